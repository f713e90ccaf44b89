-- Takes a dead letter out of the registry and resets its job to queued, once: of two
-- concurrent retries, only one gets the job back to send.
-- KEYS[1]  dead letters zset (keys.DEAD_LETTERS)     KEYS[2] dead letters' jobs hash
-- KEYS[3]  the job's record hash                     KEYS[4] the job's events stream
-- ARGV[1]  the job id
-- ARGV[2]  unused (the record of a job not ended has no TTL)
-- Returns the dead letter JSON, or false if it was not in the registry.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return false
end
local letter = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[4])
redis.call('HDEL', KEYS[3], 'result', 'finished_at', 'first_token_at', 'lease_until')
redis.call('HSET', KEYS[3], 'status', 'queued')
redis.call('PERSIST', KEYS[3])
return letter
