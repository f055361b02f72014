-- Shared head of every pick-and-claim script (state.py prepends it to each strategy's body).
--
-- KEYS[1] gen    KEYS[2] open   KEYS[3] daily  KEYS[4] day   KEYS[5] last  KEYS[6] seq
-- KEYS[7] rr: pool -> the owner who got the pool's last lead (every strategy keeps it; round robin
--         reads it as its cursor)   KEYS[8] wrr: "pool|owner" -> current weight (weighted only)
-- ARGV[1] the pool id (or "" for a single-owner claim), ARGV[2] n, then 6 fields per member:
--   id, eligible ("1"/"0", from Python's time/skill checks), max_open (-1: none),
--   max_per_day (-1: none), today (the owner's local date), weight
-- Returns {owner or "", claim sequence number or 0, generation, skipped id, reason, ...}
-- or the error NOSTATE when the generation key is gone (Redis lost its data: rebuild first).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NOSTATE routing state lost; rebuild from PostgreSQL')
end
local pool = ARGV[1]
local n = tonumber(ARGV[2])
local function field(i, k)
  return ARGV[2 + (i - 1) * 6 + k]
end
local skipped = {}
local function skip(i, reason)
  skipped[#skipped + 1] = field(i, 1)
  skipped[#skipped + 1] = reason
end
local function open_count(i)
  return tonumber(redis.call('HGET', KEYS[2], field(i, 1)) or '0')
end
-- nil when the member has room, else the reason (capacity is only ever decided here)
local function capacity(i)
  local id = field(i, 1)
  local max_open = tonumber(field(i, 3))
  if max_open >= 0 and open_count(i) >= max_open then
    return 'over_capacity'
  end
  local max_day = tonumber(field(i, 4))
  if max_day >= 0 then
    local today = 0  -- the stored count is for the stored day; another day means none yet today
    if redis.call('HGET', KEYS[4], id) == field(i, 5) then
      today = tonumber(redis.call('HGET', KEYS[3], id) or '0')
    end
    if today >= max_day then
      return 'daily_cap'
    end
  end
  return nil
end
local function claim(i)
  local id = field(i, 1)
  local today = field(i, 5)
  redis.call('HINCRBY', KEYS[2], id, 1)
  if redis.call('HGET', KEYS[4], id) == today then
    redis.call('HINCRBY', KEYS[3], id, 1)
  else
    redis.call('HSET', KEYS[4], id, today)
    redis.call('HSET', KEYS[3], id, 1)
  end
  local seq = redis.call('INCR', KEYS[6])
  redis.call('HSET', KEYS[5], id, seq)
  if pool ~= '' then
    redis.call('HSET', KEYS[7], pool, id)
  end
  local out = {id, seq, redis.call('GET', KEYS[1])}
  for _, v in ipairs(skipped) do
    out[#out + 1] = v
  end
  return out
end
local function none()
  local out = {'', 0, redis.call('GET', KEYS[1])}
  for _, v in ipairs(skipped) do
    out[#out + 1] = v
  end
  return out
end
