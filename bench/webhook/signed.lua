-- wrk script: POST pre-signed LINE webhook bodies, one event per request.
-- BENCH_EVENTS: file of "signature<TAB>body" lines; each wrk thread takes every Nth line
-- (N = BENCH_THREADS) so threads never send the same event. BENCH_PATH: the webhook path.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS"))
  path = os.getenv("BENCH_PATH")
  sigs, bodies = {}, {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_EVENTS")) do
    if i % n == tid then
      local tab = line:find("\t", 1, true)
      sigs[#sigs + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    i = i + 1
  end
  idx = 0
  wrapped = 0
end

function request()
  idx = idx + 1
  if idx > #bodies then
    idx = 1
    wrapped = wrapped + 1
  end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json; charset=utf-8",
    ["x-line-signature"] = sigs[idx],
    ["User-Agent"] = "LineBotWebhook/2.0",
  }, bodies[idx])
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do wraps = wraps + (t:get("wrapped") or 0) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "wrapped": %d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000, wraps))
end
