-- 100 string.format('|%d|%d|%d|', ...) of three numbers
local x
for i = 1, 100 do
  x = string.format('|%d|%d|%d|', 1796659286392, 1796659256392, 6096965639263)
end
return 1
