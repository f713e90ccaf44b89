-- Ends a leader's call: frees the key for the next identical call, or caches a good answer.
-- KEYS[1]  the key's shared answer: 'lead:<job id>' or 'done:<ChatResult JSON>'
-- ARGV[1]  the leader's job id
-- ARGV[2]  the answer (ChatResult JSON) to cache, or '' for none
-- ARGV[3]  cache TTL in seconds
-- Returns 1 if the key was still led by this job.
local led = 0
if redis.call('GET', KEYS[1]) == 'lead:' .. ARGV[1] then
  led = 1
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  end
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[2], 'EX', ARGV[3])
end
return led
