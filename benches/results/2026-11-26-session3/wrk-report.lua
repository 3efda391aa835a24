
-- Set by the harness: method, accept header.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local accept = os.getenv("BENCH_ACCEPT")
if accept and accept ~= "" then wrk.headers["accept"] = accept end

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local ps = {}
  for _, p in ipairs({10, 25, 50, 75, 90, 95, 99, 99.9, 99.99}) do
    ps[#ps + 1] = string.format('"%s": %.6f', tostring(p), latency:percentile(p) / 1000.0)
  end
  local codes = {}
  for code, n in pairs(statuses) do codes[#codes + 1] = string.format('"%d": %d', code, n) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "percentiles_ms": {%s}, "statuses": {%s}, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, table.concat(ps, ", "), table.concat(codes, ", "),
    e.connect + e.read + e.write + e.timeout))
end
