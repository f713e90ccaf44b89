-- Pauses a deployment for every worker until a given time, unless paused longer already.
-- KEYS[1]  paused-until (ms)
-- ARGV[1]  pause length (ms)     ARGV[2] now in ms, or '' for the server's clock
-- Returns the paused-until time in force.
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= untl then
  return tostring(current)
end
redis.call('SET', KEYS[1], tostring(untl), 'PX', tonumber(ARGV[1]))
return tostring(untl)
