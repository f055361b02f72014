-- wrk script: POST a unique ~1 KB lead per request (a new email, so every request is a new lead).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  run = os.time()
end

local pad = string.rep("x", 700)
-- the API key (bench_intake sets it; the service refuses /v1 requests without one)
local headers = {["Content-Type"] = "application/json"}
local key = os.getenv("LEADROUTE_BENCH_KEY")
if key then headers["Authorization"] = "Bearer " .. key end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"email":"lead%d.%d.%d@company%d.example","first_name":"Ada","last_name":"Lovelace",' ..
    '"title":"VP Sales","company":"Company %d","country":"US","employees":%d,' ..
    '"attributes":{"notes":"%s"}}',
    run, thread_id, counter, counter % 997, counter % 997, (counter * 37) % 5000, pad)
  return wrk.format("POST", "/v1/leads", headers, body)
end
