-- wrk script: POSTs JSON bodies built from the lines of $LOAD_FILE, in turn.
-- LOAD_KIND=search sends {"query": LINE, "k": 5} (plus "mode": $LOAD_MODE when set, and
-- "rerank": false when LOAD_RERANK=false); LOAD_KIND=embed sends {"inputs": LINE}.
local bodies = {}
local i = 0
local path = os.getenv("LOAD_PATH") or "/search"
local kind = os.getenv("LOAD_KIND") or "search"
local extra = ""
if os.getenv("LOAD_MODE") then
  extra = extra .. ', "mode": "' .. os.getenv("LOAD_MODE") .. '"'
end
if os.getenv("LOAD_RERANK") == "false" then
  extra = extra .. ', "rerank": false'
end
for line in io.lines(os.getenv("LOAD_FILE")) do
  local text = line:gsub('\\', '\\\\'):gsub('"', '\\"')
  if kind == "search" then
    bodies[#bodies + 1] = '{"query": "' .. text .. '", "k": 5' .. extra .. '}'
  else
    bodies[#bodies + 1] = '{"inputs": "' .. text .. '"}'
  end
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = i % #bodies + 1
  return wrk.format(nil, path, nil, bodies[i])
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.1f  p50 %.2f ms  p99 %.2f ms  errors %d  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
