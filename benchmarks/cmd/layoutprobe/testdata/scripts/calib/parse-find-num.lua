-- as parse-find, plus the tonumber()s and the id comparison of the release
local v = ARGV[1]
local x
for i = 1, 100 do
  local _, p, id, es, as, ns, fs = string.find(v, '^([^|]*)|(%d*)|(%d*)|(%d*)|([^|]*)|')
  if id ~= ARGV[2] then x = 1 end
  local e, n0, a = tonumber(es), tonumber(ns) or 0, tonumber(as) or 0
  if fs ~= '' then x = 2 end
end
return 1
