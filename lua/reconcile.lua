-- Rebuilds a coupon's stock and buyer records (after a Redis loss) from the record of
-- truth: the caller computed them from MySQL orders and the Kafka events not yet
-- consumed, while holding the coupon's rebuild mark (purchases wait meanwhile).
-- Replaces both in one atomic step, only if the mark is still the caller's (a rebuild
-- that overran its mark must not overwrite a newer one), and clears the mark.
--
-- The rebuilt state's gen is the rebuild's token: idempotency records made against an
-- older state become stale (see purchase.lua), except those of the orders counted here
-- as still in flight on the log, whose records are brought to the new gen.
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers  KEYS[4] rebuild mark
-- KEYS[5..] idempotency records of orders counted in flight (one per ARGV order id)
-- ARGV[1] the rebuild's token  ARGV[2] stock  ARGV[3] per-user limit  ARGV[4] starts_ms
-- ARGV[5] ends_ms  ARGV[6] deleted (0/1)  ARGV[7] price (cents)  ARGV[8] total quantity
-- ARGV[9] when the state expires (ms since epoch)
-- ARGV[10] waiting room admissions per second (0: none)
-- ARGV[11] n, the number of idempotency records  ARGV[12..11+n] their order ids
-- ARGV[12+n..] user id, count, user id, count, ...
-- Returns the previous stock, -1 when there was none, -2 when the mark is not ours.
if redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return -2
end
local previous = tonumber(redis.call('GET', KEYS[1]) or '-1')
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'limit', ARGV[3], 'starts_ms', ARGV[4], 'ends_ms', ARGV[5],
  'deleted', ARGV[6], 'price', ARGV[7], 'total', ARGV[8], 'expires_ms', ARGV[9],
  'wr_rate', ARGV[10], 'gen', ARGV[1])
redis.call('DEL', KEYS[3])
local records = tonumber(ARGV[11])
for i = 1, records do
  local key, order = KEYS[4 + i], ARGV[11 + i]
  local record = redis.call('GET', key)
  if record and string.match(record, '^([^|]*)') == order then
    redis.call('SET', key, order .. '|' .. ARGV[1], 'KEEPTTL')
  end
end
local limit = tonumber(ARGV[3])
for i = 12 + records, #ARGV, 2 do
  if limit == 1 then
    redis.call('SADD', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
for i = 1, 3 do
  redis.call('PEXPIREAT', KEYS[i], ARGV[9])
end
redis.call('DEL', KEYS[4])
return previous
