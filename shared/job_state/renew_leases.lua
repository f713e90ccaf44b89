-- Renews the claims of the jobs a live worker is still running, and puts off their checks
-- (chatq:pending) until the new lease end: a job is checked only once its claim lapses.
-- KEYS[1]  pending jobs (zset, keys.PENDING)
-- KEYS[2..] job record hashes (keys.job_key), one per running job
-- ARGV[1]  new lease end (Unix seconds)
-- ARGV[2..] the job ids, in the order of KEYS[2..]
-- Returns how many claims were renewed (jobs that ended meanwhile are left alone).
local renewed = 0
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'status') == 'in_progress' then
    redis.call('HSET', KEYS[i], 'lease_until', ARGV[1])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
