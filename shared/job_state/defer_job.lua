-- Puts a job aside until its provider slot (or until another worker's claim on it lapses):
-- it waits in Redis, not in a worker's memory, and is sent again when due.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  deferred jobs: job id -> when to send it again (zset, keys.DEFERRED)
-- KEYS[3]  pending jobs (zset, keys.PENDING): the lost-message check is put off past that
-- ARGV[1]  when to send it again (Unix seconds)
-- ARGV[2]  when to check on it if it has not ended by then (Unix seconds)
-- ARGV[3]  the job id
-- Returns 1 if the job was put aside; 0 if its record keeps no payload to send it again
-- from (a job a non-Python client sent straight to Celery), which the caller then retries.
if (redis.call('HGET', KEYS[1], 'payload') or '') == '' then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'deferrals', 1)
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[3])
return 1
