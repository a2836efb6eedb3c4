-- Claims orders of one coupon so that the api can no longer give their units back: the
-- payment role before writing them ('C'), or the api once a replay's re-publication is
-- confirmed ('P'). An order the api released first (its publication could not be
-- confirmed, the client heard 503) must not become an order.
--
-- KEYS[1..n] claims of the orders (one coupon: one slot)
-- ARGV[1] claim TTL (ms)  ARGV[2] 'C' | 'P'
-- Returns, per order, 1 when it may be written (claimed now or before), 0 when released.
local result = {}
for i, key in ipairs(KEYS) do
  local claim = redis.call('GET', key)
  if claim == 'R' then
    result[i] = 0
  else
    if not claim then
      redis.call('SET', key, ARGV[2], 'PX', ARGV[1])
    end
    result[i] = 1
  end
end
return result
