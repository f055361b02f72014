-- weighted: smooth weighted round robin (nginx). Each pick, every eligible member with room adds
-- its weight to its current weight; the largest current weight wins (first in member order on a
-- tie) and gives back the sum of the weights. Over any sum(weights) consecutive picks among the
-- same members each member's share is within 1 of its weight. Members that are absent or full
-- add nothing: they are not owed leads when they come back (no catch-up flood).
local ready = {}
local total = 0
for i = 1, n do
  if field(i, 2) == '1' then
    local why = capacity(i)
    if why then
      skip(i, why)
    else
      ready[#ready + 1] = i
      total = total + tonumber(field(i, 6))
    end
  end
end
if #ready == 0 then
  return none()
end
local best, best_cw = nil, nil
local cws = {}
for _, i in ipairs(ready) do
  local key = pool .. '|' .. field(i, 1)
  local cw = tonumber(redis.call('HGET', KEYS[8], key) or '0') + tonumber(field(i, 6))
  cws[i] = cw
  if best == nil or cw > best_cw then
    best, best_cw = i, cw
  end
end
for _, i in ipairs(ready) do
  local cw = cws[i]
  if i == best then
    cw = cw - total
  end
  redis.call('HSET', KEYS[8], pool .. '|' .. field(i, 1), cw)
end
return claim(best)
