-- Which of some jobs have a message in one place kombu keeps messages: a queue's list (one
-- slice of it per call) or its hash of messages workers hold and have not acknowledged.
-- A chat task's message names its job in the headers' "id" (the Celery task id); the first
-- "id" key of the envelope is that one (the body is base64, and quotes inside strings are
-- escaped).
-- KEYS[1]  a queue list, or kombu's unacked hash
-- ARGV[1]  'list' or 'hash'    ARGV[2], ARGV[3]  the list slice (LRANGE start stop)
-- ARGV[4..] the job ids looked for
-- Returns {items scanned, found job id, found job id...}.
local wanted = {}
for i = 4, #ARGV do
  wanted[ARGV[i]] = true
end
local items
if ARGV[1] == 'list' then
  items = redis.call('LRANGE', KEYS[1], ARGV[2], ARGV[3])
else
  items = redis.call('HVALS', KEYS[1])
end
local reply = {#items}
for _, item in ipairs(items) do
  local id = string.match(item, '"id":%s*"([^"]+)"')
  if id and wanted[id] then
    reply[#reply + 1] = id
    wanted[id] = nil
  end
end
return reply
