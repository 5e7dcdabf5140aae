-- wrk script: replays pre-signed webhook events (bench/gen_requests.py), each thread
-- taking every n-th line so no two connections send the same event. Arguments: the
-- file, the number of wrk threads, then optionally, in any order, "once" (each thread
-- stops after its last line instead of starting over; wrk itself still runs for its -d:
-- stop it then) and the mode the file was made with: "slack" (default) or a preset,
-- "stripe" / "standard-webhooks", posted to /hooks/<mode>.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

-- A Slack line: "timestamp<TAB>signature<TAB>body".
local function slack_request(line)
  local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
  return wrk.format("POST", "/hooks/slack", {
    ["Content-Type"] = "application/json",
    ["X-Slack-Request-Timestamp"] = ts,
    ["X-Slack-Signature"] = sig,
  }, body)
end

-- Any other mode: "Name: value<TAB>...<TAB>body" (JSON bodies have no raw tabs).
local function headers_request(path, line)
  local headers = {}
  local start = 1
  while true do
    local tab = line:find("\t", start, true)
    if tab == nil then break end
    local name, value = line:sub(start, tab - 1):match("^([^:]+):%s*(.*)$")
    headers[name] = value
    start = tab + 1
  end
  return wrk.format("POST", path, headers, line:sub(start))
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  once = false
  local mode = "slack"
  for i = 3, #args do
    if args[i] == "once" then once = true else mode = args[i] end
  end
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      if mode == "slack" then
        reqs[#reqs + 1] = slack_request(line)
      else
        reqs[#reqs + 1] = headers_request("/hooks/" .. mode, line)
      end
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
