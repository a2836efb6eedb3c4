-- One consistent look at a coupon's sale state for the drift audit: the stock, the
-- total it was made from, and the units the buyer records hold. Reads only.
--
-- KEYS[1] stock  KEYS[2] meta  KEYS[3] buyers
-- Returns {stock or -1 when absent, units held by buyers}.
local stock = redis.call('GET', KEYS[1])
local limit = tonumber(redis.call('HGET', KEYS[2], 'limit') or '1')
local units = 0
if limit == 1 then
  units = redis.call('SCARD', KEYS[3])
else
  for _, count in ipairs(redis.call('HVALS', KEYS[3])) do
    units = units + tonumber(count)
  end
end
return {tonumber(stock or '-1'), units}
