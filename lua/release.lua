-- Gives back one unit of a purchase that will not go through: stock + 1, the buyer's
-- count - 1, and the idempotency record dropped so a retry is a new attempt. Decided
-- against the order's claim (KEYS[4]), which the payment role sets to 'C' (consumed)
-- before it writes the order:
-- - ARGV[4] 'unpublished' (the api could not confirm the event's publication): only an
--   unclaimed order is released (claim 'R'); a consumed one is refused, since its order
--   exists or will.
-- - ARGV[4] 'failed' (the payment was declined): released once (claim 'F').
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers  KEYS[4] claim of the order
-- KEYS[5] idempotency record (or the stock key again when there is none)
-- ARGV[1] user id  ARGV[2] claim TTL (ms)  ARGV[3] 1 when KEYS[5] is a real record
-- ARGV[4] 'unpublished' | 'failed'
-- Returns 1 when released, 0 when released before, -1 when refused (consumed).
local claim = redis.call('GET', KEYS[4])
if ARGV[4] == 'unpublished' then
  if claim == 'C' or claim == 'F' then
    return -1
  end
  if claim then
    return 0
  end
  redis.call('SET', KEYS[4], 'R', 'PX', ARGV[2])
else
  if claim == 'F' or claim == 'R' then
    return 0
  end
  redis.call('SET', KEYS[4], 'F', 'PX', ARGV[2])
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
