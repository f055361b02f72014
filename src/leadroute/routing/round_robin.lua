-- Pick the next owner of a pool by strict round robin, atomically.
--
-- KEYS[1]  the pool's cursor: the id of the owner who got the pool's last lead
-- ARGV     the pool's members in a fixed order, as pairs: owner id, "1" if eligible else "0"
--
-- The next owner is the first eligible member after the cursor's owner, wrapping around.
-- Ineligible members stay in ARGV so the cursor's position is found even when its owner is
-- now ineligible; ids are matched by equality only (Lua's < follows the server's locale).
-- Returns the chosen id, or false when no member is eligible (the cursor is left alone).
local n = #ARGV / 2
if n == 0 then
  return false
end
local last = redis.call('GET', KEYS[1])
local start = 0
if last then
  for i = 1, n do
    if ARGV[2 * i - 1] == last then
      start = i
      break
    end
  end
end
for step = 1, n do
  local i = (start + step - 1) % n + 1
  if ARGV[2 * i] == '1' then
    local owner = ARGV[2 * i - 1]
    redis.call('SET', KEYS[1], owner)
    return owner
  end
end
return false
