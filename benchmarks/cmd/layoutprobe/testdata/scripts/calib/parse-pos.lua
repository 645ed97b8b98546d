-- 100 parses by positions: sub for the fixed-width ID, find(plain) + sub for the rest
local v = ARGV[1]
local x
for i = 1, 100 do
  local id = string.sub(v, 1, 22)
  local p1 = string.find(v, '|', 24, true)
  local p2 = string.find(v, '|', p1 + 1, true)
  local p3 = string.find(v, '|', p2 + 1, true)
  local p4 = string.find(v, '|', p3 + 1, true)
  local es, as, ns, fs = string.sub(v, 24, p1 - 1), string.sub(v, p1 + 1, p2 - 1), string.sub(v, p2 + 1, p3 - 1), string.sub(v, p3 + 1, p4 - 1)
  x = id
end
return 1
