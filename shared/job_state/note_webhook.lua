-- Notes how a job's webhook delivery went, on a record that still exists (an expired record
-- is never revived without its TTL).
-- KEYS[1]  job record hash (keys.job_key)
-- ARGV[1]  delivered | retrying | failed
-- Returns 1 if noted, 0 if the record is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'webhook', ARGV[1])
return 1
