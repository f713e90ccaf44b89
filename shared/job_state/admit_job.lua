-- Records a newly accepted job, as create_job.lua does, and puts it where it waits: straight
-- onto its Celery queue when its pool has nobody waiting and room under its limits (or no
-- limits at all), else in the fair scheduler until a dispatcher releases it.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  pending jobs (zset, keys.PENDING)
-- KEYS[3]  the tenant's settings hash ('' for no tenant)   KEYS[4] its token counter of the day
-- ARGV[1]  when to check the job if it goes to its queue now (Unix seconds)
-- ARGV[2]  the job id
-- ARGV[3]  the job's Celery message (chatq.shared.task_messages)
-- ARGV[4]  '1' if the id was made just now for this job (none can have it)
-- ARGV[5]  when to check the job if it waits in the scheduler (Unix seconds, far off)
-- ARGV[6]  the job's entry, less its message (schedule_lib.lua says what it holds)
-- ARGV[7]  the scheduler's key prefix ('chatq:sched:')   ARGV[8]  its entries hash
-- ARGV[9]  its pools set   ARGV[10] the job key prefix   ARGV[11] the tenant key prefix
-- ARGV[12] the tokens to reserve on the tenant's daily quota (0: none)
-- ARGV[13..] field, value, field, value... of the queued record
-- Prepended: quota_lib.lua, schedule_lib.lua.
-- Returns 1 if the job was created, 0 if its id was taken (nothing is queued), -1 if it
-- would pass its tenant's daily token quota (nothing is recorded).
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if not reserve_quota(KEYS[3], KEYS[4], tonumber(ARGV[12])) then
  return -1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 13))
local names = {
  sched = ARGV[7], entries = ARGV[8], pools = ARGV[9], job = ARGV[10], tenant = ARGV[11],
  pending = KEYS[2],
}
local entry = ARGV[6] .. '\t' .. ARGV[3]
local e = split_entry(entry)
local P = names.sched .. e.pool
local conf = read_conf(P)
if conf and conf.unlimited == '1' then  -- nothing to share: first come, first served
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  redis.call('LPUSH', e.queue, e.message)
  return 1
end
entry = within_band(names, entry)
e = split_entry(entry)
if conf and not backlogged(names, e.pool) then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  local now = now_ms()
  local count, tokens = unstarted(names, P, now, tonumber(conf.stale_ms))
  if room_in(conf, now, count, tokens) == 0 then
    charge(names, e, e.cost, now)
    release(names, P, ARGV[2], e.tokens, e.queue, e.message, now, ARGV[1])
    return 1
  end
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
enqueue(names, ARGV[2], entry)
return 1
