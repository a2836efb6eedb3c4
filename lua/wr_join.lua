-- A shopper joins a sale's waiting room. Before the draw (the sale has not opened, or
-- opened a moment ago) into the pre-queue, which the draw puts in random order; after
-- it, at the queue's tail. One place per account: joining again answers the same place.
-- Every key shares the coupon's hash tag and expires with the sale's state.
--
-- KEYS[1] meta  KEYS[2] waiting room state (hash: seed, tail, cursor, clock_ms, ...)
-- KEYS[3] pre-queue (zset user -> join ms)  KEYS[4] queue (zset user -> place)
-- KEYS[5] join times (hash user -> ms)
-- ARGV[1] user id
-- Returns {code, place}: 1 in the pre-queue (place 0), 2 queued at place,
--   -1 coupon unknown or deleted, -3 sale ended, -8 no waiting room.
local meta = redis.call('HMGET', KEYS[1], 'ends_ms', 'deleted', 'wr_rate', 'expires_ms')
if not meta[1] or meta[2] == '1' then
  return {-1, 0}
end
if tonumber(meta[3] or '0') <= 0 then
  return {-8, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(meta[1]) then
  return {-3, 0}
end
local place = redis.call('ZSCORE', KEYS[4], ARGV[1])
if place then
  return {2, tonumber(place)}
end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return {1, 0}
end
redis.call('HSETNX', KEYS[5], ARGV[1], now)
local result
if redis.call('HEXISTS', KEYS[2], 'seed') == 0 then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
  result = {1, 0}
else
  local tail = redis.call('HINCRBY', KEYS[2], 'tail', 1)
  redis.call('ZADD', KEYS[4], tail, ARGV[1])
  result = {2, tail}
end
if meta[4] then
  for i = 2, 5 do
    redis.call('PEXPIREAT', KEYS[i], meta[4])
  end
end
return result
