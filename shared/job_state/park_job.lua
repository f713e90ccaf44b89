-- Puts a job a worker took back in the fair scheduler: its provider slot is further off than
-- the worker waits (the scheduler released it on a guess that turned out wrong, a 429 paused
-- its deployment, or it came from outside the scheduler). It keeps its place: its key's
-- queue is ordered by arrival. What its release charged its tenant is refunded.
-- Prepended: schedule_lib.lua.
-- KEYS[1]  job record hash (keys.job_key)
-- KEYS[2]  pending jobs (zset, keys.PENDING)
-- ARGV[1]  when to check the job while it waits (Unix seconds, far off)
-- ARGV[2]  the job id
-- ARGV[3]  the job's entry, less its message    ARGV[4]  the job's Celery message
-- ARGV[5]  the scheduler's key prefix   ARGV[6] its entries hash   ARGV[7] its pools set
-- ARGV[8]  the job key prefix   ARGV[9] the tenant key prefix
-- Returns 1 if the job waits in the scheduler now, 0 if it was waiting there already, -1 if
-- it had ended, -2 if its record keeps no payload (a job sent straight to Celery).
local status = redis.call('HGET', KEYS[1], 'status')
if ENDED[status] then
  return -1
end
if (redis.call('HGET', KEYS[1], 'payload') or '') == '' then
  return -2
end
local names = {
  sched = ARGV[5], entries = ARGV[6], pools = ARGV[7], job = ARGV[8], tenant = ARGV[9],
  pending = KEYS[2],
}
if redis.call('HEXISTS', names.entries, ARGV[2]) == 1 then
  return 0
end
local entry = within_band(names, ARGV[3] .. '\t' .. ARGV[4])
local e = split_entry(entry)
local P = names.sched .. e.pool
if redis.call('ZREM', P .. ':released', ARGV[2]) == 1 then
  redis.call('HDEL', P .. ':released_tokens', ARGV[2])
  charge(names, e, -e.cost, now_ms())
end
redis.call('HINCRBY', KEYS[1], 'deferrals', 1)
redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
enqueue(names, ARGV[2], entry)
return 1
