-- release: a lead of ARGV[1] was closed or moved away; free one open slot (never below 0).
-- KEYS[1] gen, KEYS[2] open; ARGV[2] (optional) the generation the claim was made in.
-- With the state lost this does nothing: the rebuild counts from PostgreSQL, where the closing
-- transaction is the record. Undoing a claim whose transaction rolled back passes the claim's
-- generation: if a rebuild happened since, it counted PostgreSQL without that claim already.
local gen = redis.call('GET', KEYS[1])
if not gen then
  return -1
end
if ARGV[2] and ARGV[2] ~= '' and ARGV[2] ~= gen then
  return -2
end
local open = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if open <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
return redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
