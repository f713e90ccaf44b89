-- Marks a job in progress unless it already ended; counts the attempt.
-- KEYS[1]  job record hash (keys.job_key)
-- ARGV[1]  started_at (Unix seconds)
-- ARGV[2]  record TTL in seconds
-- ARGV[3]  model, ARGV[4] created_at: written when the record is missing (a job sent
--          straight to Celery by a non-Python client has none yet)
-- Returns the terminal status as a string if the job already ended, else the attempt number.
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return status
end
if not status then
  redis.call('HSET', KEYS[1], 'model', ARGV[3], 'created_at', ARGV[4])
end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', ARGV[1])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return attempts
