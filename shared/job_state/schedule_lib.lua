-- The fair scheduler's shared functions, prepended to admit_job.lua, park_job.lua and
-- dispatch_jobs.lua (chatq.shared.job_state.scheduling). No KEYS or ARGV of its own: each
-- script passes its key prefixes in. Redis Cluster is not supported (keys are built here).
--
-- Where a job waits: pool (the model alias) -> band (interactive, bulk) -> tenant -> fairness
-- key -> job, with these keys under P = 'chatq:sched:{pool}' and B = P .. ':{band}':
--   B:tenants          zset  backlogged tenants -> virtual time (weighted service received)
--   B:served           hash  every tenant's virtual time, kept while it is not backlogged
--   B:clock            str   the band's virtual time: the last picked tenant's, before charge
--   B:t:{tenant}       zset  the tenant's backlogged fairness keys -> service received
--   B:q:{tenant}:{key} zset  the key's waiting jobs -> when they arrived (us): first in, first out
--   B:deadlines        zset  waiting jobs with a deadline -> the deadline (ms)
--   P:released         zset  jobs sent to their Celery queue and not yet started -> when (ms)
--   P:released_tokens  hash  those jobs -> the tokens they will book
--   P:conf             hash  the pool's limits, as the workers' dispatchers last wrote them
--   P:credit           str   the bulk band's credit towards its floor
-- and 'chatq:sched:entries' (hash: waiting job -> its entry) and 'chatq:sched:pools' (set).
--
-- An entry: pool, band, tenant, key, tokens, cost, deadline ms ('' for none), arrived us,
-- queue and the Celery message, joined by tabs (JSON and base64 hold no raw tab).

local ENDED = {done = true, failed = true, cancelled = true}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(x)
  return string.format('%.3f', x)
end

local function split_entry(entry)
  local parts, start = {}, 1
  for _ = 1, 9 do
    local tab = string.find(entry, '\t', start, true)
    parts[#parts + 1] = string.sub(entry, start, tab - 1)
    start = tab + 1
  end
  parts[10] = string.sub(entry, start)
  return {
    pool = parts[1], band = parts[2], tenant = parts[3], key = parts[4],
    tokens = tonumber(parts[5]), cost = tonumber(parts[6]), deadline = tonumber(parts[7]),
    arrived = tonumber(parts[8]), queue = parts[9], message = parts[10],
  }
end

-- The entry as the tenant may have it: a tenant whose settings say band 'bulk' has every job
-- wait in the bulk band, whatever the job asked for.
local function within_band(names, entry)
  local e = split_entry(entry)
  if e.band == 'bulk' or e.tenant == '-' then return entry end
  if redis.call('HGET', names.tenant .. e.tenant, 'band') ~= 'bulk' then
    return entry
  end
  local first = string.find(entry, '\t', 1, true)
  local second = string.find(entry, '\t', first + 1, true)
  return string.sub(entry, 1, first) .. 'bulk' .. string.sub(entry, second)
end

-- Puts a job in its key's queue, making its key and tenant backlogged if they were not: a
-- tenant that becomes backlogged starts from the least virtual time among those waiting (or
-- the band's clock), never below its own (the Virtual Token Counter's rule), so an idle
-- tenant banks no credit and a returning one owes nothing.
local function enqueue(names, job_id, entry)
  local e = split_entry(entry)
  local P = names.sched .. e.pool
  local B = P .. ':' .. e.band
  redis.call('ZADD', B .. ':q:' .. e.tenant .. ':' .. e.key, string.format('%d', e.arrived), job_id)
  redis.call('HSET', names.entries, job_id, entry)
  local subkeys = B .. ':t:' .. e.tenant
  if not redis.call('ZSCORE', subkeys, e.key) then
    local least = redis.call('ZRANGE', subkeys, 0, 0, 'WITHSCORES')
    redis.call('ZADD', subkeys, least[2] or 0, e.key)
  end
  local tenants = B .. ':tenants'
  if not redis.call('ZSCORE', tenants, e.tenant) then
    local own = tonumber(redis.call('HGET', B .. ':served', e.tenant) or '0')
    local least = redis.call('ZRANGE', tenants, 0, 0, 'WITHSCORES')
    local floor = tonumber(least[2] or redis.call('GET', B .. ':clock') or '0')
    if own < floor then own = floor end
    redis.call('ZADD', tenants, fmt(own), e.tenant)
  end
  if e.deadline then
    redis.call('ZADD', B .. ':deadlines', fmt(e.deadline), job_id)
  end
  redis.call('SADD', names.pools, e.pool)
end

-- Jobs released and not started yet, and the tokens they will book; a started or ended job
-- leaves the count, as does one released more than stale_ms ago (its worker died).
local function unstarted(names, P, now, stale_ms)
  local released = redis.call('ZRANGE', P .. ':released', 0, -1, 'WITHSCORES')
  local count, tokens = 0, 0
  for i = 1, #released, 2 do
    local job_id, at = released[i], tonumber(released[i + 1])
    local status = redis.call('HGET', names.job .. job_id, 'status')
    if status ~= 'queued' or at < now - stale_ms then
      redis.call('ZREM', P .. ':released', job_id)
      redis.call('HDEL', P .. ':released_tokens', job_id)
    else
      count = count + 1
      tokens = tokens + tonumber(redis.call('HGET', P .. ':released_tokens', job_id) or '0')
    end
  end
  return count, tokens
end

-- How far past the horizon (ms) one GCRA limit's next slot is, once ``units`` more are booked
-- at ``per_unit`` ms each on its theoretical arrival time ``tat_key`` (0: within it, or no limit).
local function past_horizon(tat_key, units, per_unit, now, horizon)
  if per_unit <= 0 then return 0 end
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat < now then tat = now end
  local ahead = tat + units * per_unit - now - horizon
  if ahead > 0 then return ahead end
  return 0
end

-- How long until the pool has room for one more job: 0 when a job released now would get
-- its provider slot within the horizon, counting the jobs released and not started.
local function room_in(conf, now, count, tokens)
  local horizon = tonumber(conf.horizon_ms)
  local paused = tonumber(redis.call('GET', conf.paused_key) or '0')
  if paused > now then return paused - now end
  local wait = math.max(
    past_horizon(conf.rpm_key, count, tonumber(conf.ms_per_request), now, horizon),
    past_horizon(conf.tpm_key, tokens, tonumber(conf.ms_per_token), now, horizon))
  local max_conc = tonumber(conf.max_concurrency)
  if max_conc > 0 and wait == 0 then
    local inflight = redis.call('ZCOUNT', conf.inflight_key, now, '+inf')
    if inflight + count >= max_conc then wait = tonumber(conf.poll_ms) end
  end
  return wait
end

local function read_conf(P)
  local flat = redis.call('HGETALL', P .. ':conf')
  if #flat == 0 then return nil end
  local conf = {}
  for i = 1, #flat, 2 do conf[flat[i]] = flat[i + 1] end
  return conf
end

local function backlogged(names, pool)
  local P = names.sched .. pool
  return redis.call('EXISTS', P .. ':interactive:tenants', P .. ':bulk:tenants') > 0
end

-- Sends a job to its Celery queue: counted as released until it starts; its lost-message
-- check is due as for any queued job.
local function release(names, P, job_id, tokens, queue, message, now, check_at)
  redis.call('LPUSH', queue, message)
  redis.call('ZADD', P .. ':released', fmt(now), job_id)
  redis.call('HSET', P .. ':released_tokens', job_id, tokens)
  redis.call('ZADD', names.pending, 'XX', check_at, job_id)
end

-- Adds ``amount`` of weighted service (negative: a refund) to the job's tenant, divided by the
-- tenant's weight (its settings' 'weight', default 1), and to its fairness key; counts it in
-- the tenant's share of the last minute.
local function charge(names, e, amount, now)
  local B = names.sched .. e.pool .. ':' .. e.band
  local weight = tonumber(redis.call('HGET', names.tenant .. e.tenant, 'weight') or '1') or 1
  if weight <= 0 then weight = 1 end
  local delta = amount / weight
  if redis.call('ZSCORE', B .. ':tenants', e.tenant) then
    redis.call('ZINCRBY', B .. ':tenants', fmt(delta), e.tenant)
  else
    redis.call('HINCRBYFLOAT', B .. ':served', e.tenant, fmt(delta))
  end
  local subkeys = B .. ':t:' .. e.tenant
  if redis.call('ZSCORE', subkeys, e.key) then
    redis.call('ZINCRBY', subkeys, fmt(amount), e.key)
  end
  local share = names.sched .. 'share:' .. math.floor(now / 10000)
  redis.call('HINCRBYFLOAT', share, e.tenant, fmt(amount))
  redis.call('EXPIRE', share, 120)
end
