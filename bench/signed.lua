-- wrk script: replays pre-signed Slack events (bench/gen_requests.py), each thread
-- taking every n-th line so no two connections send the same event. Arguments: the
-- file, the number of wrk threads, and optionally "once": each thread stops after its
-- last line instead of starting over (wrk itself still runs for its -d; stop it then).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  once = args[3] == "once"
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/hooks/slack", {
        ["Content-Type"] = "application/json",
        ["X-Slack-Request-Timestamp"] = ts,
        ["X-Slack-Signature"] = sig,
      }, body)
    end
    i = i + 1
  end
  pos = 0
end

function request()
  pos = pos + 1
  if pos > #reqs then
    if once then wrk.thread:stop() end
    pos = 1
  end
  return reqs[pos]
end

-- No response() hook on purpose: defining one makes wrk parse every response in
-- Lua, which costs more CPU than the server under test. Non-2xx counts come from
-- wrk's own summary line.
