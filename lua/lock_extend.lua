-- Extends a rebuild lock, only while it is still the caller's (it may have lapsed and
-- been taken by another rebuilder meanwhile).
--
-- KEYS[1] the lock   ARGV[1] the holder's token   ARGV[2] new TTL (ms)
-- Returns 1 when extended, 0 when the lock is no longer the caller's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
