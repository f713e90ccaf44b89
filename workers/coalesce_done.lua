-- Ends a leader's call: frees the key for the next identical call and caches a good answer.
-- KEYS[1]  leader of the key's call in flight     KEYS[2] cached answer for the key
-- ARGV[1]  the leader's job id
-- ARGV[2]  the answer (ChatResult JSON) to cache, or '' for none
-- ARGV[3]  cache TTL in seconds
-- Returns 1 if the key was still led by this job.
local led = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  led = 1
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
end
return led
