-- The draw at a sale's opening: the pre-queue becomes the head of the queue in the
-- order the caller drew from the seed. Early arrivals the caller did not see (they
-- joined while it drew) follow in arrival order. Only the first draw counts.
--
-- KEYS[1] meta  KEYS[2] waiting room state  KEYS[3] pre-queue  KEYS[4] queue
-- ARGV[1] seed  ARGV[2..] user ids in drawn order
-- Returns the queue's length, -1 when drawn before, -2 when the sale has not opened.
if redis.call('HEXISTS', KEYS[2], 'seed') == 1 then
  return -1
end
local meta = redis.call('HMGET', KEYS[1], 'starts_ms', 'expires_ms')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not meta[1] or now < tonumber(meta[1]) then
  return -2
end
local tail = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    tail = tail + 1
    redis.call('ZADD', KEYS[4], tail, ARGV[i])
  end
end
local drawn = tail
for _, user in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  tail = tail + 1
  redis.call('ZADD', KEYS[4], tail, user)
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[2], 'seed', ARGV[1], 'drawn', drawn, 'tail', tail, 'cursor', 0,
  'clock_ms', now, 'opened_ms', now)
if meta[2] then
  redis.call('PEXPIREAT', KEYS[2], meta[2])
  redis.call('PEXPIREAT', KEYS[4], meta[2])
end
return tail
