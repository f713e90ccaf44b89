-- Decides how a job gets its answer: from the cache, by following an identical call already in
-- flight, or by leading (making the provider call itself).
-- KEYS[1]  leader of the key's call in flight (string: job id, with a lease)
-- KEYS[2]  cached answer for the key (string: ChatResult JSON)
-- KEYS[3]  cache and coalescing counters (hash)
-- ARGV[1]  the job id   ARGV[2] leader lease (ms)   ARGV[3] '1' to use the cache, '0' not
-- Returns {'cached', result JSON} | {'follow', leader job id} | {'lead', ''}.
if ARGV[3] == '1' then
  local cached = redis.call('GET', KEYS[2])
  if cached then
    redis.call('HINCRBY', KEYS[3], 'cache_hits', 1)
    return {'cached', cached}
  end
  redis.call('HINCRBY', KEYS[3], 'cache_misses', 1)
end
local leader = redis.call('GET', KEYS[1])
if leader and leader ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[3], 'coalesced', 1)
  return {'follow', leader}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'lead', ''}
