-- Books one provider call under a deployment's cluster-wide limits.
-- Rates use GCRA as a scheduler: each call is given the next free slot (now, or later), so calls
-- from every worker are paced evenly and a waiting call never polls.
-- KEYS[1]  requests TAT (ms)          KEYS[2]  tokens TAT (ms)
-- KEYS[3]  in-flight leases (zset: lease id -> expiry ms)
-- KEYS[4]  paused-until (ms), set after a 429
-- ARGV[1]  now in ms, or '' to use the server's clock (the same for every host)
-- ARGV[2]  ms per request (0: no rpm limit)      ARGV[3] request burst tolerance (ms)
-- ARGV[4]  ms per token (0: no tpm limit)        ARGV[5] tokens this call is estimated to use
-- ARGV[6]  token burst tolerance (ms)
-- ARGV[7]  max concurrency (0: none)             ARGV[8] lease id    ARGV[9] lease TTL (ms)
-- ARGV[10] how long to wait when every concurrency slot is taken (ms)
-- ARGV[11] the longest slot wait to book (ms); a later slot is not booked
-- Returns {booked, wait_ms, now_ms}: booked 1 means the call holds a slot (and a lease) and
-- goes after wait_ms; booked 0 means nothing was booked: ask again after wait_ms.
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local paused = tonumber(redis.call('GET', KEYS[4]) or '0')
if paused > now then
  return {0, tostring(paused - now), tostring(now)}
end

local max_conc = tonumber(ARGV[7])
if max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= max_conc then
    return {0, ARGV[10], tostring(now)}
  end
end

-- The slot of one limit: {wait until it, TAT after booking it}.
local function slot(key, increment, tolerance)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait < 0 then wait = 0 end
  return wait, tat + increment
end

local wait, rpm_tat, tpm_tat = 0, nil, nil
local per_request = tonumber(ARGV[2])
if per_request > 0 then
  local w
  w, rpm_tat = slot(KEYS[1], per_request, tonumber(ARGV[3]))
  if w > wait then wait = w end
end
local per_token = tonumber(ARGV[4])
if per_token > 0 then
  local w
  w, tpm_tat = slot(KEYS[2], per_token * tonumber(ARGV[5]), tonumber(ARGV[6]))
  if w > wait then wait = w end
end
if wait > tonumber(ARGV[11]) then
  return {0, tostring(wait), tostring(now)}
end

-- Times keep three decimals: tostring() would round a ms timestamp to 0.1 ms.
if rpm_tat then
  redis.call('SET', KEYS[1], string.format('%.3f', rpm_tat), 'PX', math.ceil(rpm_tat - now) + 60000)
end
if tpm_tat then
  redis.call('SET', KEYS[2], string.format('%.3f', tpm_tat), 'PX', math.ceil(tpm_tat - now) + 60000)
end
if max_conc > 0 then
  redis.call('ZADD', KEYS[3], now + wait + tonumber(ARGV[9]), ARGV[8])
  redis.call('PEXPIRE', KEYS[3], math.ceil(wait) + tonumber(ARGV[9]) + 60000)
end
return {1, string.format('%.3f', wait), string.format('%.3f', now)}
