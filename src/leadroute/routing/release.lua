-- release: a lead of ARGV[1] was closed or moved away; free one open slot (never below 0).
-- KEYS[1] gen, KEYS[2] open. With the state lost this does nothing: the rebuild counts from
-- PostgreSQL, where the closing transaction is the record.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local open = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if open <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
return redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
