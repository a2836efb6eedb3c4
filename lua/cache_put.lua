-- Writes a rebuilt catalog cache entry unless an admin change happened since the
-- rebuild began (the catalog version moved): a slow rebuild must not put back the
-- page or coupon an invalidation just removed. The keys share their shard's hash tag.
--
-- KEYS[1] the shard's version   KEYS[2] the entry   KEYS[3] the shard's cached pages
-- ARGV[1] version read before the rebuild   ARGV[2] TTL (ms)
-- ARGV[3] 'page' (a list, indexed) | 'coupon' (a string)   ARGV[4..] the value(s)
-- Returns 1 when written, 0 when the version moved.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
if ARGV[3] == 'page' then
  for i = 4, #ARGV do
    redis.call('RPUSH', KEYS[2], ARGV[i])
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[3], KEYS[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
end
return 1
