-- Reads a job's end for a reader of its events other than its submitter. A job that has not
-- ended and whose end goes to a reply channel (finish_job.lua) is marked watched, so its end
-- reaches its stream too: atomic with the end, so either this sees the end or the stream gets it.
-- KEYS[1]  job record hash (keys.job_key)
-- Returns {status or false, result JSON or false, 1 if the end is not in the stream, else 0}.
local record = redis.call('HMGET', KEYS[1], 'status', 'result', 'reply_to', 'watched')
local status, result, reply_to = record[1], record[2], record[3]
if not status then
  return {false, false, 0}
end
local ended = status == 'done' or status == 'failed' or status == 'cancelled'
if reply_to and not ended and not record[4] then
  redis.call('HSET', KEYS[1], 'watched', '1')
end
local outside = 0
if ended and reply_to and not record[4] then
  outside = 1
end
return {status, result or false, outside}
