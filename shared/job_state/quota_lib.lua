-- A tenant's daily token quota, reserved as a job is accepted: prepended to create_job.lua
-- and admit_job.lua. The worker settles the reservation to what the call used when the job
-- ends (chatq.workers.end_listeners); a job the scheduler drops, ended while waiting, gives it
-- back (dispatch_jobs.lua).

-- Reserves ``tokens`` on the counter ``quota_key`` unless that would pass the tenant's
-- 'tokens_per_day' (its settings hash, ``tenant_key``): false then, and nothing is reserved.
-- Every job of a tenant reserves, quota or not, so that settling is the same for all.
local function reserve_quota(tenant_key, quota_key, tokens)
  if tokens <= 0 then return true end
  local quota = tonumber(redis.call('HGET', tenant_key, 'tokens_per_day') or '')
  local used = tonumber(redis.call('GET', quota_key) or '0')
  if quota and used + tokens > quota then return false end
  redis.call('INCRBY', quota_key, tokens)
  redis.call('EXPIRE', quota_key, 172800)
  return true
end
