-- GET of BENCH_PATH (baseline, browse).
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local path = os.getenv("BENCH_PATH")

function request()
  return wrk.format("GET", path)
end
