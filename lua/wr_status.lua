-- Where a shopper stands in a sale's waiting room. The first look after the admission
-- cursor passed the shopper's place records when (the pass expires from then on).
--
-- KEYS[1] meta  KEYS[2] waiting room state  KEYS[3] pre-queue  KEYS[4] queue
-- KEYS[5] stock  KEYS[6] admission times (hash user -> ms)  KEYS[7] join times
-- ARGV[1] user id
-- Returns {code, place, cursor, tail, admitted at ms, joined at ms (first look only)}:
--   0 not in the room, 1 in the pre-queue (the draw is pending), 2 queued, 3 admitted,
--   4 sold out, -1 coupon unknown or deleted, -3 sale ended, -8 no waiting room.
local meta = redis.call('HMGET', KEYS[1], 'ends_ms', 'deleted', 'wr_rate', 'expires_ms')
if not meta[1] or meta[2] == '1' then
  return {-1, 0, 0, 0, 0, 0}
end
if tonumber(meta[3] or '0') <= 0 then
  return {-8, 0, 0, 0, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(meta[1]) then
  return {-3, 0, 0, 0, 0, 0}
end
local place = redis.call('ZSCORE', KEYS[4], ARGV[1])
if not place then
  if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    return {1, 0, 0, 0, 0, 0}
  end
  return {0, 0, 0, 0, 0, 0}
end
place = tonumber(place)
local state = redis.call('HMGET', KEYS[2], 'cursor', 'tail')
local cursor = tonumber(state[1] or '0')
local tail = tonumber(state[2] or '0')
local sold_out = tonumber(redis.call('GET', KEYS[5]) or '0') <= 0
if place > cursor then
  return {sold_out and 4 or 2, place, cursor, tail, 0, 0}
end
local joined = 0
if redis.call('HSETNX', KEYS[6], ARGV[1], now) == 1 then
  joined = tonumber(redis.call('HGET', KEYS[7], ARGV[1]) or '0')
  if meta[4] then
    redis.call('PEXPIREAT', KEYS[6], meta[4])
  end
end
local admitted = tonumber(redis.call('HGET', KEYS[6], ARGV[1]))
return {sold_out and 4 or 3, place, cursor, tail, admitted, joined}
