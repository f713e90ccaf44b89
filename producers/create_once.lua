-- Creates a record (a batch's or a file's) unless one with its id exists, and indexes it:
-- what an idempotency key's retry, racing its first request, must not do twice.
-- KEYS[1]  the record hash   KEYS[2]  the index (zset: id -> created_at)
-- ARGV[1]  created_at   ARGV[2]  the id   ARGV[3..] field, value, field, value...
-- Returns {1} if created, else {0, the existing record's request_hash or false}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'request_hash')}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return {1}
