-- Puts a coupon's sale into Redis: stock, per-user limit, window, deleted flag, price.
-- Idempotent and never resets a sale in progress: the stock is only set when absent,
-- unless ARGV[6] = 1 (the caller has checked that nothing can have been sold yet).
--
-- KEYS[1] stock (string)   KEYS[2] meta (hash)
-- ARGV[1] total quantity   ARGV[2] per-user limit
-- ARGV[3] sale start (ms since epoch)   ARGV[4] sale end (ms)
-- ARGV[5] deleted (0/1)    ARGV[6] reset stock (0/1)   ARGV[7] price (cents)
-- Returns the stock now in Redis.
if ARGV[6] == '1' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
redis.call('HSET', KEYS[2], 'limit', ARGV[2], 'starts_ms', ARGV[3], 'ends_ms', ARGV[4], 'deleted', ARGV[5], 'price', ARGV[7])
return tonumber(redis.call('GET', KEYS[1]))
