-- claim: one named owner (the account owner) if they have room.
if n >= 1 and field(1, 2) == '1' then
  local why = capacity(1)
  if why then
    skip(1, why)
  else
    return claim(1)
  end
end
return none()
