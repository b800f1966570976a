-- wrk script for bench/polling.py. Argument (after --): milliseconds between one connection's requests,
-- 0 for back to back. Paced connections wait 0.5x-1.5x the interval at random, so that they do not poll in
-- step, as independent clients would not. Prints one JSON line of figures at the end.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  interval = tonumber(args[1]) or 0
  math.randomseed(os.time() * 100 + id)  -- each wrk thread its own draws
end

function delay()
  if interval == 0 then return 0 end
  return math.random(math.floor(interval / 2), math.floor(interval * 3 / 2))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
