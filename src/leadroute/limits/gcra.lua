-- GCRA (generic cell rate algorithm) over several buckets at once, exact across every instance
-- sharing Redis: the request is admitted only if every bucket admits it, and then it is counted
-- in every one. KEYS: the buckets (one hash tag, so this runs on Redis Cluster). ARGV: for each
-- bucket, its emission interval in microseconds (the window divided by the limit) and its burst.
-- The clock is Redis' own (TIME), so instances with skewed clocks still agree.
-- Returns {admitted (1/0), then per bucket: remaining, retry_after_us, reset_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local result = {1}
local updates = {}
for i, key in ipairs(KEYS) do
    local interval = tonumber(ARGV[2 * i - 1])
    local burst = tonumber(ARGV[2 * i])
    local tolerance = interval * burst
    local tat = tonumber(redis.call('GET', key))
    if tat == nil or tat < now then
        tat = now
    end
    local new_tat = tat + interval
    local allow_at = new_tat - tolerance
    if allow_at > now then
        result[1] = 0
        table.insert(result, 0)
        table.insert(result, allow_at - now)
        table.insert(result, tat - now)
    else
        table.insert(result, math.floor((now - allow_at) / interval))
        table.insert(result, 0)
        table.insert(result, new_tat - now)
        updates[key] = new_tat
    end
end
if result[1] == 1 then
    for key, new_tat in pairs(updates) do
        redis.call('SET', key, new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
    end
end
return result
