-- GCRA (generic cell rate algorithm): one bucket, exact across every instance sharing Redis.
-- KEYS[1]: the bucket. ARGV[1]: emission interval in microseconds (the window divided by the
-- limit), ARGV[2]: the burst (requests allowed at once), ARGV[3]: cost of this request (0: peek).
-- The clock is Redis' own (TIME), so instances with skewed clocks still agree.
-- Returns {allowed (1/0), remaining, retry_after_us, reset_us}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
    tat = now
end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
    local remaining = math.floor((now - (tat - tolerance)) / interval)
    if remaining < 0 then remaining = 0 end
    return {0, remaining, allow_at - now, tat - now}
end
if cost > 0 then
    redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
end
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, 0, new_tat - now}
