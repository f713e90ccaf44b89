-- Which of some jobs have a message in a queue's list (one slice of it per call).
-- A chat task's message names its job in the headers' "id" (the Celery task id); the first
-- "id" key of the envelope is that one (the body is base64, and quotes inside strings are
-- escaped).
-- KEYS[1]  a queue list
-- ARGV[1], ARGV[2]  the list slice (LRANGE start stop)
-- ARGV[3..] the job ids looked for
-- Returns {items scanned, found job id, ...}.
local wanted = {}
for i = 3, #ARGV do
  wanted[ARGV[i]] = true
end
local reply = {0}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])) do
  reply[1] = reply[1] + 1
  local id = string.match(item, '"id":%s*"([^"]+)"')
  if id and wanted[id] then
    wanted[id] = nil
    reply[#reply + 1] = id
  end
end
return reply
