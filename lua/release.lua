-- Gives back one unit of a purchase that will not go through (the order event could not
-- be published, or the payment failed): stock + 1, the buyer's count - 1, and the
-- idempotency record dropped so a retry is a new attempt. Runs at most once per order:
-- the caller passes a release marker that the script sets, so a replay changes nothing.
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers  KEYS[4] release marker of the order
-- KEYS[5] idempotency record (or the stock key again when there is none)
-- ARGV[1] user id  ARGV[2] marker TTL (ms)  ARGV[3] 1 when KEYS[5] is a real record
-- Returns 1 when released, 0 when this order was released before.
if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[2]) then
  return 0
end
redis.call('INCR', KEYS[1])
local limit = tonumber(redis.call('HGET', KEYS[2], 'limit') or '1')
if limit == 1 then
  redis.call('SREM', KEYS[3], ARGV[1])
else
  if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[5])
end
return 1
