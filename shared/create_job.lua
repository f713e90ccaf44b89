-- Records a newly accepted job, unless a job with that id exists: a job id submitted twice
-- runs once.
-- KEYS[1]  job record hash (keys.job_key)
-- ARGV[1]  record TTL in seconds
-- ARGV[2..] field, value, field, value... of the queued record
-- Returns 1 if the job was created, 0 if its id was taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
