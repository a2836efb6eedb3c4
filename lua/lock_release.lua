-- Releases a rebuild lock, only if it is still the caller's.
--
-- KEYS[1] the lock   ARGV[1] the holder's token
-- Returns 1 when released, 0 when the lock had lapsed or changed hands.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
