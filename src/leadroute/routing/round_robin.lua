-- round_robin: the first eligible member with room after the pool's cursor (the owner who got
-- the pool's last lead), wrapping around. Ineligible members stay in ARGV so the cursor's
-- position is found even when its owner is now ineligible. Members come in byte order of their
-- ids; when the cursor's owner has left the pool, the rotation goes on after where they were
-- (bytewise: Lua's own string '<' follows the server's locale).
local function bytes_before(a, b)
  local la, lb = #a, #b
  for k = 1, math.min(la, lb) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then
      return x < y
    end
  end
  return la < lb
end
local last = redis.call('HGET', KEYS[7], pool)
local start = 0
if last then
  local found = false
  for i = 1, n do
    if field(i, 1) == last then
      start = i
      found = true
      break
    end
  end
  if not found then
    for i = 1, n do
      if bytes_before(field(i, 1), last) then
        start = i
      end
    end
  end
end
for step = 1, n do
  local i = (start + step - 1) % n + 1
  if field(i, 2) == '1' then
    local why = capacity(i)
    if why then
      skip(i, why)
    else
      return claim(i)
    end
  end
end
return none()
