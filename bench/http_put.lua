-- bench/http_put.lua - wrk script for bench/http_put.sh: PUT of one new
-- record per request, each with its own id (thread number, a random run
-- tag and a counter), authorized with the token in $BS_TOKEN.
local threads = 0

function setup(thread)
  thread:set("tno", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() + tno)
  prefix = "/v1/collections/bench/records/w" .. tno .. "-" ..
    math.random(1, 1000000000) .. "-"
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BS_TOKEN"),
    ["Content-Type"] = "application/json",
  }
  n = 0
end

function request()
  n = n + 1
  return wrk.format("PUT", prefix .. n, headers,
    '{"name":"Acme","city":"Tallinn","vip":true,"n":' .. n .. '}')
end
