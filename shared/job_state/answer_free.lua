-- Frees the key of identical requests' call a job led without an answer to share (it was
-- deferred, found ended, or failed), unless another job has taken the lead since.
-- KEYS[1]  the key's shared answer: the id of the job leading (keys.answer_key)
-- ARGV[1]  the job id
-- Returns 1 if the key was still led by this job.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
