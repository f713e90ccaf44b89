-- Marks a batch as running, unless a cancel came first: then it stays 'cancelling'. In one
-- step, so a cancel that lands while the runner starts is never overwritten.
-- KEYS[1]  the batch record (keys.batch_key)
-- ARGV[1]  the input file's path   ARGV[2] its number of lines
-- Returns the status written.
local status = 'in_progress'
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  status = 'cancelling'
end
redis.call('HSET', KEYS[1], 'status', status, 'input', ARGV[1], 'total', ARGV[2])
return status
