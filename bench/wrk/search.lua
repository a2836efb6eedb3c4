-- GET /api/coupons/search with a different query on each request: a word of the seeded
-- vocabulary (whole or its first letters), a status filter and a sort, so that the
-- results cache seldom answers.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
local words = { "coffee", "tea", "chocolate", "espresso", "mug", "grinder", "kettle",
  "teapot", "cookies", "honey", "jam", "bagel", "croissant", "muffin", "waffle",
  "pancake", "syrup", "cocoa", "latte", "matcha", "roast", "blend", "organic",
  "deluxe", "classic", "premium", "family", "travel", "gift", "sampler" }
local statuses = { "", "&status=live", "&status=upcoming", "&status=ended" }
local sorts = { "", "&sort=ending_soon", "&sort=price", "&sort=newest" }
local counter = 0
-- BENCH_DELAY_MS: each connection waits this long between its requests (a paced load).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

if pause > 0 then
  function delay()
    return pause
  end
end

function init(args)
  counter = id * 7919
end

function request()
  counter = counter + 1
  local word = words[counter % #words + 1]
  -- Every third query is a prefix (the first 3 letters and more).
  if counter % 3 == 0 then
    word = string.sub(word, 1, 3 + counter % 3)
  end
  local status = statuses[math.floor(counter / #words) % #statuses + 1]
  local sort = sorts[math.floor(counter / (#words * #statuses)) % #sorts + 1]
  local page = math.floor(counter / (#words * #statuses * #sorts)) % 3 + 1
  return wrk.format("GET", "/api/coupons/search?q=" .. word .. status .. sort .. "&page=" .. page)
end
