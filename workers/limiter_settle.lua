-- Ends a call admitted by limiter_acquire.lua: frees its slot and settles its token estimate.
-- KEYS[1]  tokens TAT (ms)    KEYS[2] in-flight leases (zset)
-- ARGV[1]  lease id
-- ARGV[2]  ms to add to the tokens TAT: (actual - estimated tokens) * ms per token; may be < 0
-- Returns the number of leases freed (0 if it had expired already).
local freed = redis.call('ZREM', KEYS[2], ARGV[1])
local delta = tonumber(ARGV[2])
if delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[1], delta)
end
return freed
