-- Decides how a job gets its answer: from the cache, by following an identical call already in
-- flight, or by leading (making the provider call itself).
-- KEYS[1]  the key's shared answer (string): 'lead:<job id>' while the leader's call is in
--          flight (expires with its lease), then 'done:<ChatResult JSON>', the cached answer
-- KEYS[2]  cache and coalescing counters (hash)
-- ARGV[1]  the job id   ARGV[2] leader lease (ms)   ARGV[3] '1' to use the cache, '0' not
-- Returns {'cached', result JSON} | {'follow', leader job id} | {'lead', ''}. A job that
-- skips the cache while an answer is cached makes its own call without leading one.
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], 'lead:' .. ARGV[1], 'PX', ARGV[2])
  return {'lead', ''}
end
local kind, value = string.sub(current, 1, 5), string.sub(current, 6)
if kind == 'done:' then
  if ARGV[3] == '1' then
    redis.call('HINCRBY', KEYS[2], 'cache_hits', 1)
    return {'cached', value}
  end
  return {'lead', ''}
end
if value == ARGV[1] then
  return {'lead', ''}
end
redis.call('HINCRBY', KEYS[2], 'coalesced', 1)
return {'follow', value}
