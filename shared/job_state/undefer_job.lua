-- Sends a deferred job again, in one step: it leaves the deferred set and its message joins its
-- queue together, so at no moment is it in neither (a worker dying between the two lost it
-- until the pending check), and a job taken by another worker or ended meanwhile is not sent.
-- KEYS[1]  deferred jobs (zset, keys.DEFERRED)
-- KEYS[2]  job record hash (keys.job_key)
-- KEYS[3]  the queue's list
-- ARGV[1]  the job id   ARGV[2] its Celery message (chatq.shared.task_messages)
-- Returns 1 if sent, 0 if another worker took it, -1 if it had ended (it leaves the set).
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return -1
end
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1
