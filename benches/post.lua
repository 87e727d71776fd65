-- wrk script: POST the file $BODY with optional $SIGNATURE (BridgeApi-Signature) and
-- $AUTHORIZATION headers; prints one JSON line of figures at the end. Every request is the same
-- bytes, pre-signed once: the generator does no per-request work.
local file = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
if os.getenv("SIGNATURE") then wrk.headers["BridgeApi-Signature"] = os.getenv("SIGNATURE") end
if os.getenv("AUTHORIZATION") then wrk.headers["Authorization"] = os.getenv("AUTHORIZATION") end

local non_2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non_2xx = non_2xx + 1 end
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local ms = function(p) return latency:percentile(p) / 1000 end
  io.write(string.format(
    '{"target":"%s","body":"%s","connections":%s,"answered":%d,"per_second":%.0f,"errors":%d,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"p999_ms":%.2f,"max_ms":%.2f}\n',
    os.getenv("TARGET") or "?", os.getenv("BODY_NAME") or "?", os.getenv("CONNECTIONS") or "?",
    summary.requests, summary.requests / seconds,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000))
end
