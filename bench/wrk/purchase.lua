-- POST /api/coupons/BENCH_COUPON/purchase, each request with the next shopper's token
-- (BENCH_TOKENS: a Lua file returning the tokens), threads starting at different users.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local tokens = dofile(os.getenv("BENCH_TOKENS"))
local path = "/api/coupons/" .. os.getenv("BENCH_COUPON") .. "/purchase"
local counter = 0

function init(args)
  counter = id * 7919
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", path, { ["Authorization"] = "Bearer " .. token })
end
