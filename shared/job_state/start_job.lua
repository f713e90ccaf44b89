-- Claims a job for one worker unless it ended or another worker's claim is still alive.
-- The job's check in the pending set stays where it is: a sweep that finds the claim alive
-- moves the check to when it would lapse, so a job that ends first costs nothing there.
-- KEYS[1]  job record hash (keys.job_key)
-- ARGV[1]  now (Unix seconds)
-- ARGV[2]  record TTL in seconds: set on a record this claim creates (a job sent straight to
--          Celery by a non-Python client has none yet); a recorded job's record has no TTL
--          until it ends
-- ARGV[3]  model, ARGV[4] created_at: written when the record is missing
-- ARGV[5]  lease length in seconds: the claim lapses unless renewed (keeps the worker alive)
-- ARGV[6]  the claiming worker's node name (worker1@host), kept on the record
-- Returns {'ended', status} | {'busy', seconds left on the other claim} | {'claimed', attempt}.
local now = tonumber(ARGV[1])
local record = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempts')
local status = record[1]
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return {'ended', status}
end
if status == 'in_progress' then
  local lease = tonumber(record[2] or '0')
  if lease > now then
    return {'busy', tostring(lease - now)}
  end
end
local attempts = tonumber(record[3] or '0') + 1
local lease_until = now + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'started_at', ARGV[1],
           'lease_until', tostring(lease_until), 'worker', ARGV[6] or '', 'attempts', attempts)
if not status then
  redis.call('HSET', KEYS[1], 'model', ARGV[3], 'created_at', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {'claimed', attempts}
