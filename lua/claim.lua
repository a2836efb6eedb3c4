-- Claims an order so that the api can no longer give its unit back: the payment role
-- before writing it ('C'), or the api once a replay's re-publication is confirmed ('P').
-- An order the api released first (its publication could not be confirmed, the client
-- heard 503) must not become an order.
--
-- KEYS[1] claim of the order  ARGV[1] claim TTL (ms)  ARGV[2] 'C' | 'P'
-- Returns 1 when the order may be written (claimed now or before), 0 when released.
local claim = redis.call('GET', KEYS[1])
if claim == 'R' then
  return 0
end
if not claim then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 1
