-- Moves a call's entry in the send gate's window to the moment its request was really sent,
-- when that was late (a worker thread short of the GIL or of a connection), so that the next
-- calls are gated on when the provider saw it, not on when it passed the gate.
-- KEYS[1]  calls sent: zset, member '<lease id>|<tokens>' -> sent at (ms)
-- ARGV[1]  now in ms, or '' to use the server's clock (the same for every host)
-- ARGV[2]  the call's member ('<lease id>|<tokens>', as limiter_gate.lua wrote it)
-- Returns 1 if the entry moved, 0 if it had left the window already.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
return redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[2])
