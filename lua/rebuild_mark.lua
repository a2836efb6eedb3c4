-- Keeps or drops a coupon's rebuild mark, only for the rebuild that holds it.
--
-- KEYS[1] rebuild mark  ARGV[1] the rebuild's token  ARGV[2] 'extend' | 'clear'
-- ARGV[3] new TTL (ms, for 'extend')
-- Returns 1 when done, 0 when the mark is not (or no longer) the caller's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'extend' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
