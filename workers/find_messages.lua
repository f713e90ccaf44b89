-- Which of some jobs have a message in one place kombu keeps messages: a queue's list (one
-- slice of it per call) or its hash of messages workers hold and have not acknowledged.
-- A chat task's message names its job in the headers' "id" (the Celery task id); the first
-- "id" key of the envelope is that one (the body is base64, and quotes inside strings are
-- escaped).
-- KEYS[1]  a queue list, or kombu's unacked hash
-- KEYS[2]  kombu's unacked index (zset: delivery tag -> when a worker took the message)
-- ARGV[1]  'list' or 'hash'    ARGV[2], ARGV[3]  the list slice (LRANGE start stop)
-- ARGV[4..] the job ids looked for
-- Returns {items scanned, found job id, when it was taken ('' in a list), ...}.
local wanted = {}
for i = 4, #ARGV do
  wanted[ARGV[i]] = true
end
local reply = {0}
local function look(item, tag)
  reply[1] = reply[1] + 1
  local id = string.match(item, '"id":%s*"([^"]+)"')
  if id and wanted[id] then
    wanted[id] = nil
    reply[#reply + 1] = id
    reply[#reply + 1] = tag and (redis.call('ZSCORE', KEYS[2], tag) or '') or ''
  end
end
if ARGV[1] == 'list' then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], ARGV[2], ARGV[3])) do
    look(item, nil)
  end
else
  local held = redis.call('HGETALL', KEYS[1])
  for i = 1, #held, 2 do
    look(held[i + 1], held[i])
  end
end
return reply
