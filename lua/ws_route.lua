-- The user -> ws server route. Every connect claims it (the newest socket's instance
-- wins, so a reconnect to another instance moves it); heartbeats refresh it (and put it
-- back if it vanished, e.g. a removal racing a reconnect) and the last disconnect
-- removes it only while it still points to this server.
--
-- KEYS[1] route   ARGV[1] 'claim' | 'refresh' | 'remove'   ARGV[2] server id
-- ARGV[3] TTL (ms)
-- Returns 1 when the route was set/refreshed/removed, 0 when it points elsewhere.
if ARGV[1] == 'claim' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'refresh' and not current then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if current ~= ARGV[2] then
  return 0
end
if ARGV[1] == 'refresh' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
