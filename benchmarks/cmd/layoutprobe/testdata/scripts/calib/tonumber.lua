-- 100 tonumber() of a 13-digit string
local s = '1796659286392'
local x
for i = 1, 100 do
  x = tonumber(s)
end
return 1
