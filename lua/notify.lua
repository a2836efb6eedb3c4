-- Tells the ws instance holding a shopper's socket about a payment result: looks up the
-- user's server id and publishes on that server's channel, in one round trip. The
-- channel is a pub/sub name, not a key.
--
-- KEYS[1] the user's ws route (server id)
-- ARGV[1] message (JSON)  ARGV[2] channel prefix ("payment_update:")
-- Returns the number of subscribers that got it, or -1 when the user has no socket.
local server = redis.call('GET', KEYS[1])
if not server then
  return -1
end
return redis.call('PUBLISH', ARGV[2] .. server, ARGV[1])
