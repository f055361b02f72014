-- round_robin: the first eligible member with room after the pool's cursor (the owner who got
-- the pool's last lead), wrapping around. Ineligible members stay in ARGV so the cursor's
-- position is found even when its owner is now ineligible; ids are compared by equality only.
local last = redis.call('HGET', KEYS[7], pool)
local start = 0
if last then
  for i = 1, n do
    if field(i, 1) == last then
      start = i
      break
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
