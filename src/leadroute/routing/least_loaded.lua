-- least_loaded: the eligible member with room and the fewest open leads; on a tie, the one whose
-- last assignment (anywhere) is oldest (never assigned counts as oldest), then member order.
-- A returning rep with fewer open leads does get the next leads until they level up: that is
-- the strategy's point, and it is bounded by their capacity.
local best, best_open, best_last = nil, nil, nil
for i = 1, n do
  if field(i, 2) == '1' then
    local why = capacity(i)
    if why then
      skip(i, why)
    else
      local open = open_count(i)
      local last = tonumber(redis.call('HGET', KEYS[5], field(i, 1)) or '0')
      if best == nil or open < best_open or (open == best_open and last < best_last) then
        best, best_open, best_last = i, open, last
      end
    end
  end
end
if best == nil then
  return none()
end
return claim(best)
