-- ARGV[1] a lock string; 100 parses with one string.find and 5 captures
local v = ARGV[1]
local x
for i = 1, 100 do
  local _, p, id, es, as, ns, fs = string.find(v, '^([^|]*)|(%d*)|(%d*)|(%d*)|([^|]*)|')
  x = id
end
return 1
