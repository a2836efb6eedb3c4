-- Puts a coupon's sale into Redis: stock, per-user limit, window, deleted flag, price and
-- the total the stock was made from. It never resets a sale that has sold and never
-- re-creates a lost one:
--   * no stock key, or no meta (its 'total'): the stock is created at the total only
--     when ARGV[6] = 1 (MySQL says this sale's state was never created). Otherwise the state was lost (eviction,
--     failover, flush) and only a reconcile may rebuild it: nothing is written.
--   * a stock key and another total than it was made from: the stock follows the new
--     total only while nothing is sold (stock = that total); otherwise nothing is written.
--
-- Every key written expires at ARGV[8], a grace period after the sale's end (a changed
-- end moves it).
--
-- KEYS[1] stock (string)   KEYS[2] meta (hash)   KEYS[3] buyers
-- ARGV[1] total quantity   ARGV[2] per-user limit
-- ARGV[3] sale start (ms since epoch)   ARGV[4] sale end (ms)
-- ARGV[5] deleted (0/1)    ARGV[6] may create the stock (0/1)   ARGV[7] price (cents)
-- ARGV[8] when the state expires (ms since epoch)
-- ARGV[9] waiting room admissions per second (0: none; purchases then need no pass)
-- Returns {1, stock} when written, {-1, 0} when the state is lost, {-2, stock} when the
-- total cannot change because units are sold.
local stock = redis.call('GET', KEYS[1])
local made_from = redis.call('HGET', KEYS[2], 'total')
-- A stock key without its meta is a leftover of a lost state, not a state.
if not stock or not made_from then
  if ARGV[6] ~= '1' then
    return {-1, 0}
  end
  redis.call('SET', KEYS[1], ARGV[1])
  stock = ARGV[1]
else
  if made_from ~= ARGV[1] then
    if stock ~= made_from then
      return {-2, tonumber(stock)}
    end
    redis.call('SET', KEYS[1], ARGV[1])
    stock = ARGV[1]
  end
end
redis.call('HSET', KEYS[2], 'limit', ARGV[2], 'starts_ms', ARGV[3], 'ends_ms', ARGV[4],
  'deleted', ARGV[5], 'price', ARGV[7], 'total', ARGV[1], 'expires_ms', ARGV[8],
  'wr_rate', ARGV[9])
for i = 1, 3 do
  redis.call('PEXPIREAT', KEYS[i], ARGV[8])
end
return {1, tonumber(stock)}
