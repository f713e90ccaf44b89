-- Records a newly accepted job, unless a job with that id exists: a job id submitted twice
-- runs once. The job joins the pending set, to be checked at ARGV[2] if it has not ended.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  pending jobs: job id -> when to check its message still exists (zset)
-- ARGV[1]  record TTL in seconds
-- ARGV[2]  when to check the job (Unix seconds)
-- ARGV[3]  the job id
-- ARGV[4..] field, value, field, value... of the queued record
-- Returns 1 if the job was created, 0 if its id was taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
