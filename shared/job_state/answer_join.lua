-- Decides how a job gets its answer: from the cache, by following an identical call already in
-- flight, or by leading (making the provider call itself).
-- KEYS[1]  the key's shared answer (string): the id of the job that leads identical requests'
--          call; once that job is done, its record holds their cached answer
-- KEYS[2]  cache and coalescing counters (hash)
-- ARGV[1]  the job id
-- ARGV[2]  how long a lead lasts (ms): the cache TTL, or the lease for a job that skips the cache
-- ARGV[3]  '1' to use the cache, '0' not
-- ARGV[4]  now (Unix seconds)
-- ARGV[5]  the prefix of job record keys (keys.job_key(''))
-- Returns {'cached', result JSON} | {'follow', leader job id} | {'lead', ''}. A job that
-- skips the cache while an answer is cached makes its own call without leading one; a lead
-- whose job failed, was cancelled, lost its claim or expired is taken over.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'lead', ''}
end
local leader = redis.call('GET', KEYS[1])
if leader == ARGV[1] then
  return {'lead', ''}
end
local record = redis.call('HMGET', ARGV[5] .. leader, 'status', 'result', 'lease_until')
local status = record[1]
if status == 'done' then
  if ARGV[3] == '1' then
    redis.call('HINCRBY', KEYS[2], 'cache_hits', 1)
    return {'cached', record[2]}
  end
  return {'lead', ''}
end
local running = status == 'queued'
  or (status == 'in_progress' and tonumber(record[3] or '0') > tonumber(ARGV[4]))
if running then
  redis.call('HINCRBY', KEYS[2], 'coalesced', 1)
  return {'follow', leader}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'lead', ''}
