-- Rebuilds a coupon's stock and buyer records (after a Redis loss) from the record of
-- truth: the caller computed them from MySQL orders and the Kafka events not yet
-- consumed. Replaces both in one atomic step.
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers
-- ARGV[1] stock  ARGV[2] per-user limit  ARGV[3] starts_ms  ARGV[4] ends_ms
-- ARGV[5] deleted (0/1)  ARGV[6] price (cents)  ARGV[7] total quantity
-- ARGV[8..] user id, count, user id, count, ...
-- Returns the previous stock (or -1 when there was none).
local previous = tonumber(redis.call('GET', KEYS[1]) or '-1')
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'limit', ARGV[2], 'starts_ms', ARGV[3], 'ends_ms', ARGV[4], 'deleted', ARGV[5], 'price', ARGV[6], 'total', ARGV[7])
redis.call('DEL', KEYS[3])
local limit = tonumber(ARGV[2])
for i = 8, #ARGV, 2 do
  if limit == 1 then
    redis.call('SADD', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return previous
