-- Who waits in one pool of the fair scheduler: every backlogged tenant of each band, with its
-- jobs waiting, when its oldest arrived and its virtual time. Reads only.
-- KEYS     none (the keys are built from ARGV, as schedule_lib.lua lays them out)
-- ARGV[1]  the scheduler's key prefix ('chatq:sched:')   ARGV[2] the pool (model alias)
-- Returns a flat list: band, tenant, waiting, oldest arrival (us), virtual time, band, ...
local out = {}
for _, band in ipairs({'interactive', 'bulk'}) do
  local B = ARGV[1] .. ARGV[2] .. ':' .. band
  local tenants = redis.call('ZRANGE', B .. ':tenants', 0, -1, 'WITHSCORES')
  for i = 1, #tenants, 2 do
    local tenant, waiting, oldest = tenants[i], 0, nil
    for _, key in ipairs(redis.call('ZRANGE', B .. ':t:' .. tenant, 0, -1)) do
      local queue = B .. ':q:' .. tenant .. ':' .. key
      waiting = waiting + redis.call('ZCARD', queue)
      local first = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
      if first[2] and (not oldest or tonumber(first[2]) < oldest) then
        oldest = tonumber(first[2])
      end
    end
    out[#out + 1] = band
    out[#out + 1] = tenant
    out[#out + 1] = waiting
    out[#out + 1] = string.format('%d', oldest or 0)
    out[#out + 1] = tenants[i + 1]
  end
end
return out
