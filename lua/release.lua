-- Gives back one unit of a purchase that will not go through: stock + 1, the buyer's
-- count - 1, and the idempotency record dropped so a retry is a new attempt. Decided
-- against the order's claim (KEYS[4]), which the payment role sets to 'C' (consumed)
-- before it writes the order (or 'P', a replay's confirmed re-publication):
-- - ARGV[4] 'unpublished' (the api could not confirm the event's publication): only an
--   unclaimed order is released (claim 'R'); a consumed one is refused, since its order
--   exists or will.
-- - ARGV[4] 'failed' (the payment was declined): released once (claim 'F').
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers  KEYS[4] claim of the order
-- KEYS[5] idempotency record (or the stock key again when there is none)
-- KEYS[6] the coupon's rebuild mark
-- ARGV[1] user id  ARGV[2] claim TTL (ms)  ARGV[3] 1 when KEYS[5] is a real record
-- ARGV[4] 'unpublished' | 'failed'
-- ARGV[5] for an unpublished order's give-back retried after the first attempt failed:
--         the gen of the state the unit was reserved in (purchase.lua's answer); absent
--         for a first attempt
-- Returns 1 when released, 0 when released before, -1 when refused (consumed), -2 when
-- the release must wait for the running rebuild to finish, -3 when a retried give-back
-- finds the state rebuilt (or gone) since the reservation: nothing is changed.
--
-- A retried give-back may come after the settle window of a rebuild, which counted the
-- order from MySQL and the log as it found them: a unit given back then would be counted
-- twice (an oversell), and a late 'R' mark would make the payment role skip an order the
-- rebuild counted as sold. So it is done only against the state it was reserved in, never
-- during a rebuild; otherwise the rebuild has decided this unit.
--
-- While the sale state is being rebuilt: a failed payment's release waits (the rebuild
-- counts a FAILED order not yet marked 'F' as still holding its unit, and the release
-- then gives it back to the rebuilt stock); an unpublished order is only marked 'R' (the
-- rebuild reads the marks after every such release is done, and skips it).
local rebuilding = redis.call('EXISTS', KEYS[6]) == 1
local retried = ARGV[5] ~= nil
if rebuilding and (ARGV[4] ~= 'unpublished' or retried) then
  return -2
end
if retried then
  local state = redis.call('HMGET', KEYS[2], 'total', 'gen')
  if not state[1] or (state[2] or '') ~= ARGV[5] then
    return -3
  end
end
local claim = redis.call('GET', KEYS[4])
if ARGV[4] == 'unpublished' then
  if claim == 'C' or claim == 'F' or claim == 'P' then
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
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[5])
end
-- The sale state is lost: the rebuild counts from MySQL and the log (this order is
-- FAILED or released there), so nothing is given back here; an INCR would leave a stock
-- key without its meta.
local limit = redis.call('HGET', KEYS[2], 'limit')
if rebuilding or not limit or not redis.call('HGET', KEYS[2], 'total') then
  return 1
end
limit = tonumber(limit)
redis.call('INCR', KEYS[1])
if limit == 1 then
  redis.call('SREM', KEYS[3], ARGV[1])
else
  if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
end
return 1
