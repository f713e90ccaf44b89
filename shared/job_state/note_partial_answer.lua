-- Adds what a job cancelled mid-call got before its call was stopped (the answer so far,
-- with its usage) to the result its cancel wrote: the cancel ends the job at once; its
-- worker, having stopped the call, knows what it cost.
-- KEYS[1]  job record hash (keys.job_key)
-- ARGV[1]  the partial completion JSON (its usage counted by chatq)
-- Returns 1 if noted, 0 if the job did not end cancelled (or has no result).
if redis.call('HGET', KEYS[1], 'status') ~= 'cancelled' then
  return 0
end
local raw = redis.call('HGET', KEYS[1], 'result')
if not raw then
  return 0
end
local result = cjson.decode(raw)
result['completion'] = cjson.decode(ARGV[1])
redis.call('HSET', KEYS[1], 'result', cjson.encode(result))
return 1
