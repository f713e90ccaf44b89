-- Records a newly accepted job and queues its Celery message, unless a job with that id
-- exists: a job id submitted twice runs once. The job joins the pending set, to be checked
-- at ARGV[1] if it has not ended. The record has no TTL until the job ends (finish_job.lua):
-- every accepted job ends.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  pending jobs: job id -> when to check its message still exists (zset)
-- KEYS[3]  the queue's list (kombu's Redis transport takes messages from its right end)
-- KEYS[4]  the tenant's settings hash ('' for no tenant)   KEYS[5] its token counter of the day
-- ARGV[1]  when to check the job (Unix seconds)
-- ARGV[2]  the job id
-- ARGV[3]  the job's Celery message (chatq.shared.task_messages), or '' to record it only
-- ARGV[4]  '1' if the id was made just now for this job (a random UUID: none can have it)
-- ARGV[5]  the tokens to reserve on the tenant's daily quota (0: none)
-- ARGV[6..] field, value, field, value... of the queued record
-- Prepended: quota_lib.lua.
-- Returns 1 if the job was created (and queued), 0 if its id was taken, -1 if it would pass
-- its tenant's daily token quota (nothing is recorded).
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not reserve_quota(KEYS[4], KEYS[5], tonumber(ARGV[5])) then
  return -1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
end
return 1
