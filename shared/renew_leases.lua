-- Renews the claims of the jobs a live worker is still running.
-- KEYS     job record hashes (keys.job_key), one per running job
-- ARGV[1]  new lease end (Unix seconds)
-- Returns how many claims were renewed (jobs that ended meanwhile are left alone).
local renewed = 0
for _, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'status') == 'in_progress' then
    redis.call('HSET', key, 'lease_until', ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
