-- Releases a pool's waiting jobs to their Celery queues while it has room under its limits:
-- each one chosen by band, then deadline, then the tenant and fairness key that have received
-- the least weighted service (schedule_lib.lua). One atomic step: two dispatchers never
-- release the same job, and room is counted with the jobs released and not yet started.
-- Prepended: schedule_lib.lua.
-- KEYS[1]  pending jobs (zset, keys.PENDING)
-- ARGV[1]  the pool (model alias)   ARGV[2] the most jobs to release in this call
-- ARGV[3]  when to check a released job (Unix seconds)
-- ARGV[4]  the bulk band's floor: its least share of releases while both bands wait (0-0.9)
-- ARGV[5]  a job whose deadline is this close (ms) goes first in its band
-- ARGV[6]  the scheduler's key prefix   ARGV[7] its entries hash   ARGV[8] its pools set
-- ARGV[9]  the job key prefix   ARGV[10] the tenant key prefix
-- ARGV[11] the quota key prefix ('chatq:quota:'): a dropped job's reservation goes back
-- ARGV[12..] the pool's limits: field, value... (rpm_key, tpm_key, paused_key, inflight_key,
--          ms_per_request, ms_per_token, max_concurrency, horizon_ms, stale_ms, poll_ms,
--          unlimited), kept in P:conf for admit_job.lua
-- Returns {released, wait_ms}: wait_ms is how long until there is room again (0: it released
-- as many as asked and may have more), -1 when nothing waits.
local names = {
  sched = ARGV[6], entries = ARGV[7], pools = ARGV[8], job = ARGV[9], tenant = ARGV[10],
  pending = KEYS[1],
}
local pool = ARGV[1]
local P = names.sched .. pool
redis.call('HSET', P .. ':conf', unpack(ARGV, 12))
local conf = read_conf(P)
local now = now_ms()
local count, tokens = 0, 0
if conf.unlimited ~= '1' then
  count, tokens = unstarted(names, P, now, tonumber(conf.stale_ms))
end

local function choose_band()
  local inter = redis.call('EXISTS', P .. ':interactive:tenants') == 1
  local bulk = redis.call('EXISTS', P .. ':bulk:tenants') == 1
  if inter and bulk then
    local credit = tonumber(redis.call('GET', P .. ':credit') or '0')
    if credit >= 1 then
      redis.call('SET', P .. ':credit', string.format('%.9f', credit - 1))
      return 'bulk'
    end
    local floor = tonumber(ARGV[4])
    redis.call('SET', P .. ':credit', string.format('%.9f', credit + floor / (1 - floor)))
    return 'interactive'
  end
  if inter then return 'interactive' end
  if bulk then return 'bulk' end
  return nil
end

-- Takes the next job of a band out of the scheduler: its entry, or nil if it was lost.
local function pick(band)
  local B = P .. ':' .. band
  local job_id, tenant, key
  local urgent = redis.call('ZRANGE', B .. ':deadlines', 0, 0, 'WITHSCORES')
  if urgent[1] and tonumber(urgent[2]) - now <= tonumber(ARGV[5]) then
    job_id = urgent[1]
  end
  local entry
  if job_id then
    entry = redis.call('HGET', names.entries, job_id)
    if entry then
      local e = split_entry(entry)
      tenant, key = e.tenant, e.key
      redis.call('ZREM', B .. ':q:' .. tenant .. ':' .. key, job_id)
    end
    redis.call('ZREM', B .. ':deadlines', job_id)
  else
    tenant = redis.call('ZRANGE', B .. ':tenants', 0, 0)[1]
    key = redis.call('ZRANGE', B .. ':t:' .. tenant, 0, 0)[1]
    if key then
      job_id = redis.call('ZPOPMIN', B .. ':q:' .. tenant .. ':' .. key)[1]
    end
    if job_id then
      entry = redis.call('HGET', names.entries, job_id)
      redis.call('ZREM', B .. ':deadlines', job_id)
    end
  end
  if job_id then redis.call('HDEL', names.entries, job_id) end
  if tenant then
    local subkeys = B .. ':t:' .. tenant
    if key and redis.call('EXISTS', B .. ':q:' .. tenant .. ':' .. key) == 0 then
      redis.call('ZREM', subkeys, key)
    end
    local vt = redis.call('ZSCORE', B .. ':tenants', tenant)
    if vt then
      redis.call('SET', B .. ':clock', vt)
      if redis.call('EXISTS', subkeys) == 0 then
        redis.call('ZREM', B .. ':tenants', tenant)
        redis.call('HSET', B .. ':served', tenant, vt)
      end
    end
  end
  if not entry then return nil end
  return job_id, split_entry(entry)
end

local released, tries = 0, 0
while tries < tonumber(ARGV[2]) do
  tries = tries + 1
  local wait = 0
  if conf.unlimited ~= '1' then wait = room_in(conf, now, count, tokens) end
  if wait > 0 then return {released, math.ceil(wait)} end
  local band = choose_band()
  if not band then
    redis.call('SREM', names.pools, pool)
    return {released, -1}
  end
  local job_id, e = pick(band)
  if job_id and not ENDED[redis.call('HGET', names.job .. job_id, 'status') or 'done'] then
    charge(names, e, e.cost, now)
    release(names, P, job_id, e.tokens, e.queue, e.message, now, ARGV[3])
    count, tokens, released = count + 1, tokens + e.tokens, released + 1
  elseif job_id and e.tenant ~= '-' then  -- ended while waiting: never called
    local day = math.floor(e.arrived / 86400000000)
    redis.call('DECRBY', ARGV[11] .. e.tenant .. ':tokens:' .. day, e.tokens)
  end
end
return {released, 0}
