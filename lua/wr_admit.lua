-- Moves a waiting room's admission cursor at the sale's rate: places up to the cursor
-- may buy. Admissions are earned with time (rate per second) and spent only on shoppers
-- who are queued, so an empty queue builds no burst. Stops when the stock is gone. Safe
-- to run from every api instance: each run takes what was earned since the last.
--
-- KEYS[1] meta  KEYS[2] waiting room state  KEYS[3] stock
-- Returns {code, cursor before, cursor after, tail}: 1 admitting, 2 sold out (told for
--   the first time), 3 sold out (told before), -1 not drawn yet.
local state = redis.call('HMGET', KEYS[2], 'seed', 'tail', 'cursor', 'clock_ms', 'sold_out')
if not state[1] then
  return {-1, 0, 0, 0}
end
local tail = tonumber(state[2])
local cursor = tonumber(state[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(redis.call('GET', KEYS[3]) or '0') <= 0 then
  if state[5] == '1' then
    return {3, cursor, cursor, tail}
  end
  redis.call('HSET', KEYS[2], 'sold_out', '1')
  return {2, cursor, cursor, tail}
end
local rate = tonumber(redis.call('HGET', KEYS[1], 'wr_rate') or '0')
local clock = tonumber(state[4])
if rate <= 0 then
  return {1, cursor, cursor, tail}
end
if cursor >= tail then
  -- Nobody waits: no admissions build up meanwhile.
  redis.call('HSET', KEYS[2], 'clock_ms', now)
  return {1, cursor, cursor, tail}
end
local earned = math.floor((now - clock) * rate / 1000)
if earned <= 0 then
  return {1, cursor, cursor, tail}
end
local after = math.min(tail, cursor + earned)
-- The clock moves by the time the admissions spent were earned in.
local spent_ms = math.floor((after - cursor) * 1000 / rate)
redis.call('HSET', KEYS[2], 'cursor', after, 'clock_ms', clock + spent_ms)
return {1, cursor, after, tail}
