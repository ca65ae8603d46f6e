-- wrk script for benchmarks/e2e.py: replays the pre-built webhooks in BENCH_REQUESTS (one per
-- line: signature, a tab, the JSON body), each on a new connection as senders do. After
-- BENCH_COUNT answers it writes "<answers> <non-2xx>" to BENCH_DONE and stops sending.
local requests, sent, answered, failed = {}, 0, 0, 0
local count = tonumber(os.getenv("BENCH_COUNT"))
local path = os.getenv("BENCH_PATH")

for line in io.lines(os.getenv("BENCH_REQUESTS")) do
  local signature, body = line:match("^([^\t]*)\t(.*)$")
  requests[#requests + 1] = wrk.format("POST", path, {
    -- wrk.format adds no Host to a request given its own headers; HTTP/1.1 requires one
    -- (the relay's server answers 400 without it, as RFC 9112 says).
    ["Host"] = wrk.host .. ":" .. wrk.port,
    ["Content-Type"] = "application/json",
    ["Typeform-Signature"] = signature,
    ["Connection"] = "close",
  }, body)
end

request = function()
  sent = sent + 1
  return requests[math.min(sent, #requests)]
end

response = function(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then failed = failed + 1 end
  if answered == count then
    local file = io.open(os.getenv("BENCH_DONE"), "w")
    file:write(answered, " ", failed, "\n")
    file:close()
    wrk.thread:stop()
  end
end
