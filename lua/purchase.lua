-- The purchase gate: sale window, stock and per-user limit checked, stock decremented
-- and the buyer recorded in one atomic step. Every key shares the coupon's hash tag.
--
-- KEYS[1] stock (string)  KEYS[2] meta (hash: limit, starts_ms, ends_ms, deleted, price,
--         expires_ms: when the sale's state expires, which the buyers record follows;
--         gen: which rebuild made the state, absent before the first)
-- KEYS[3] buyers (set when limit = 1, hash user -> count above it)
-- KEYS[4] idempotency record of this (user, Idempotency-Key): "order id|gen", or the
--         stock key again when the request has no key
-- KEYS[5] the coupon's rebuild mark (set while its state is being reconciled)
-- ARGV[1] user id  ARGV[2] order id to use if accepted  ARGV[3] idempotency TTL (ms)
-- ARGV[4] 1 when KEYS[4] is a real idempotency record
-- ARGV[5] 1 when the request carries a valid admission pass for this user and coupon
--         (checked by the caller; needed when the meta has a waiting room, wr_rate > 0)
-- ARGV[6] 1 when the caller found that the order of a stale record (code 3) was not
--         counted by the rebuild: it is reserved again, under the same id
--
-- A record made against a state that was since lost and rebuilt is stale: the rebuild
-- counted its order only if the order reached MySQL or the log (and then refreshed the
-- record's gen when the event was still in flight). The caller looks the order up; one
-- that is nowhere holds no unit in the rebuilt stock and must be reserved again.
--
-- Returns {code, order id, price, gen}, gen being the state's (see KEYS[2]) on codes 1
-- and 2, so that a give-back retried later can tell whether the state was rebuilt since:
--   1  accepted (new)                         2  replay of an accepted request
--   3  replay of a stale record: look the order up, and call again with ARGV[6] = 1
--      when it does not exist
--  -1  coupon unknown or deleted             -2 sale not started   -3 sale ended
--  -4  per-user limit reached                -5 sold out
--  -6  the sale state is being rebuilt: try again shortly
--  -7  the sale has a waiting room and the request no valid admission pass
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {-6, '', '0', ''}
end
local meta = redis.call('HMGET', KEYS[2], 'limit', 'starts_ms', 'ends_ms', 'deleted', 'price',
  'expires_ms', 'wr_rate', 'gen')
if not meta[1] then
  return {-1, '', '0', ''}
end
local gen = meta[8] or ''
local order_id = ARGV[2]
local has_idem = ARGV[4] == '1'
if has_idem then
  local previous = redis.call('GET', KEYS[4])
  if previous then
    local previous_order, previous_gen = string.match(previous, '^([^|]*)|?(.*)$')
    if previous_gen == gen then
      return {2, previous_order, meta[5] or '0', gen}
    end
    if ARGV[6] ~= '1' then
      return {3, previous_order, meta[5] or '0', ''}
    end
    order_id = previous_order
  end
end
if meta[4] == '1' then
  return {-1, '', '0', ''}
end
-- Redis's clock, so every api instance judges the window the same way.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(meta[2]) then
  return {-2, '', '0', ''}
end
if now >= tonumber(meta[3]) then
  return {-3, '', '0', ''}
end
if tonumber(meta[7] or '0') > 0 and ARGV[5] ~= '1' then
  return {-7, '', '0', ''}
end

local limit = tonumber(meta[1])
local bought
if limit == 1 then
  bought = redis.call('SISMEMBER', KEYS[3], ARGV[1])
else
  bought = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
end
if bought >= limit then
  return {-4, '', '0', ''}
end

local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if stock <= 0 then
  return {-5, '', '0', ''}
end

redis.call('DECR', KEYS[1])
if limit == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
end
-- The first buyer creates the record; it expires with the rest of the sale's state.
if meta[6] then
  redis.call('PEXPIREAT', KEYS[3], meta[6], 'NX')
end
if has_idem then
  redis.call('SET', KEYS[4], order_id .. '|' .. gen, 'PX', ARGV[3])
end
return {1, order_id, meta[5] or '0', gen}
