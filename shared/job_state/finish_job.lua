-- Ends a job exactly once: writes its result and tells its readers, unless it already ended.
-- The end event goes to the job's stream; a job whose record names a reply channel (its
-- submitter waits for the result alone) has it published there instead, and in its stream
-- too only if another reader watches it (watch_job.lua). A job that failed for good is also
-- filed as a dead letter, in the same step.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  job events stream (keys.events_key)
-- KEYS[3]  dead letters: job id -> failed at (zset, keys.DEAD_LETTERS)
-- KEYS[4]  dead letters' jobs: job id -> dead letter JSON (hash, keys.DEAD_LETTER_JOBS)
-- ARGV[1]  terminal status: done | failed | cancelled
-- ARGV[2]  result JSON (ChatResult)
-- ARGV[3]  finished_at (Unix seconds)
-- ARGV[4]  record TTL in seconds
-- ARGV[5]  events TTL in seconds
-- ARGV[6]  '1' if the record must already exist (cancel), '0' otherwise
-- ARGV[7]  dead letter JSON to file if the status is failed, or ''
-- ARGV[8]  the job id (the dead letter's name)
-- KEYS[5]  identical requests' shared answer (string): the id of the job leading their call
-- ARGV[9]  '1' if this job led a shared call: done with ARGV[10] > 0, its record is the
--          cached answer KEYS[5] points to (and ARGV[4] covers the cache TTL); else KEYS[5]
--          is freed
-- ARGV[10] cache TTL in seconds (0: do not cache)
-- KEYS[6]  pending jobs (zset): the job leaves it, and its record empties the message payload
-- ARGV[11], ARGV[12]  a channel and the task event published on it as the job ends (Flower's,
--          chatq.shared.broker.task_end_event), or '' and ''
-- ARGV[13] the channel a job cancelled while in progress is named on, for its worker to stop
--          the provider call (keys.CANCELS)
-- Returns 1 if this call ended the job, 0 if it had already ended, -1 if it does not exist.
local record = redis.call('HMGET', KEYS[1], 'status', 'reply_to', 'watched')
local status, reply_to = record[1], record[2]
if not status and ARGV[6] == '1' then
  return -1
end
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'result', ARGV[2], 'finished_at', ARGV[3],
           'payload', '')
redis.call('ZREM', KEYS[6], ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if reply_to then
  redis.call('PUBLISH', reply_to, ARGV[2])
end
if not reply_to or record[3] then
  redis.call('XADD', KEYS[2], '*', 'type', 'end', 'result', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
if ARGV[9] == '1' and not (ARGV[1] == 'done' and tonumber(ARGV[10]) > 0)
    and redis.call('GET', KEYS[5]) == ARGV[8] then
  redis.call('DEL', KEYS[5])
end
if ARGV[1] == 'cancelled' and status == 'in_progress' and ARGV[13] then
  redis.call('PUBLISH', ARGV[13], ARGV[8])
end
if ARGV[11] and ARGV[11] ~= '' then
  redis.call('PUBLISH', ARGV[11], ARGV[12])
end
if ARGV[1] == 'failed' and ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[8])
  redis.call('HSET', KEYS[4], ARGV[8], ARGV[7])
end
return 1
