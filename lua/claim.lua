-- The payment role claims an order before writing it: from then on the api can no
-- longer give its unit back. An order the api released first (its event's publication
-- could not be confirmed, the client heard 503) must not become an order.
--
-- KEYS[1] claim of the order  ARGV[1] claim TTL (ms)
-- Returns 1 when the order may be written (claimed now or before), 0 when released.
local claim = redis.call('GET', KEYS[1])
if claim == 'R' then
  return 0
end
if not claim then
  redis.call('SET', KEYS[1], 'C', 'PX', ARGV[1])
end
return 1
