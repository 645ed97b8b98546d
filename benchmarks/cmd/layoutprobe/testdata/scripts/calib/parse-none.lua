-- the loop alone
local v = ARGV[1]
local x
for i = 1, 100 do
  x = v
end
return 1
