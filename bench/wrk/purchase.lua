-- POST /api/coupons/BENCH_COUPON/purchase, each request with the next shopper's token
-- (BENCH_TOKENS: a Lua file returning the tokens), threads starting at different users.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local tokens = dofile(os.getenv("BENCH_TOKENS"))
local path = "/api/coupons/" .. os.getenv("BENCH_COUPON") .. "/purchase"
-- BENCH_PASSES: a Lua file returning each shopper's admission pass (a sale with a
-- waiting room), in the order of the tokens.
local passes = os.getenv("BENCH_PASSES") and dofile(os.getenv("BENCH_PASSES"))
local counter = 0

function init(args)
  counter = id * 7919
end

-- BENCH_FORWARDED_FOR=1: each shopper also has an address of its own, as a load
-- balancer in front of NGINX reports it (the cluster scenario).
local forwarded = os.getenv("BENCH_FORWARDED_FOR") == "1"

function request()
  counter = counter + 1
  local n = counter % #tokens
  local headers = { ["Authorization"] = "Bearer " .. tokens[n + 1] }
  if passes then
    headers["X-Admission-Pass"] = passes[n + 1]
  end
  if forwarded then
    headers["X-Forwarded-For"] = string.format("10.%d.%d.%d",
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  return wrk.format("POST", path, headers)
end
