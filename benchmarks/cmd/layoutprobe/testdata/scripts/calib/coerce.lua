-- 100 string-to-number coercions by arithmetic (s + 0) of a 13-digit string
local s = '1796659286392'
local x
for i = 1, 100 do
  x = s + 0
end
return 1
