-- Lets a booked call go now, or says how long to wait, so that no window of the provider's
-- quantum holds more calls (or tokens) sent than its share of the per-minute limit. Booking
-- paces the calls; this gate holds at the moment of sending, so a worker thread that woke
-- late cannot bunch up with one on time and draw a 429 from a quantised limit.
-- KEYS[1]  calls sent: zset, member '<lease id>|<tokens>' -> sent at (ms)
-- ARGV[1]  now in ms, or '' to use the server's clock (the same for every host)
-- ARGV[2]  window (ms)
-- ARGV[3]  most calls in a window (0: no request limit)
-- ARGV[4]  most tokens in a window (0: no token limit)
-- ARGV[5]  this call's tokens (capped at ARGV[4])
-- ARGV[6]  this call's lease id
-- Returns 0 if the call goes now (it is recorded as sent), else the ms to wait.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local window = tonumber(ARGV[2])
local max_calls = tonumber(ARGV[3])
local max_tokens = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
if max_tokens > 0 and cost > max_tokens then
  cost = max_tokens
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local sent = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local calls = #sent / 2
local wait = 0
if max_calls > 0 and calls >= max_calls then
  local oldest = tonumber(sent[2 * (calls - max_calls + 1)])
  wait = oldest + window - now
end
if max_tokens > 0 then
  local used = 0
  for i = 1, #sent, 2 do
    used = used + tonumber(string.match(sent[i], '|(%d+)$'))
  end
  local i = 1
  while used + cost > max_tokens and i <= #sent do
    used = used - tonumber(string.match(sent[i], '|(%d+)$'))
    local free_at = tonumber(sent[i + 1]) + window - now
    if free_at > wait then
      wait = free_at
    end
    i = i + 2
  end
end
if wait > 0 then
  return math.max(1, math.ceil(wait))
end
redis.call('ZADD', KEYS[1], now, ARGV[6] .. '|' .. math.floor(cost))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 2))
return 0
