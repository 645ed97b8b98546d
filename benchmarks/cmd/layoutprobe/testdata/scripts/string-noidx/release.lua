-- String layout WITHOUT the lock-ID index. KEYS lock; ARGV lockID, slotPrefix.
local function keepAt(n)
  return 1735689600000 + math.ceil(n / 100) + 5000
end

local lk = KEYS[1]
local v = redis.call('GET', lk)
if not v then return -1 end
local _, p, id, es, as, ns, fs = string.find(v, '^([^|]*)|(%d*)|(%d*)|(%d*)|([^|]*)|')
if id ~= ARGV[1] then return -1 end
local e, n0 = tonumber(es), tonumber(ns) or 0
local kd = keepAt(n0)
local live = e and e + 999 >= kd
if not live then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  live = e and e > now - 1000
end
local r, w = false, nil
if fs ~= '' then
  r = string.find(fs, 'r', 1, true) ~= nil
  w = string.match(fs, 'w%d+')
end
local val = '|||' .. ns .. '|' .. fs .. '|'
if (tonumber(as) or 0) + 5000 >= kd then
  redis.call('SET', lk, val, 'PX', '5000')
else
  redis.call('SET', lk, val, 'PXAT', string.format('%d', kd))
end
if r then redis.pcall('SPUBLISH', ARGV[2] .. 'rel:' .. string.sub(lk, string.len(ARGV[2]) + 6), '') end
if live then return 1 end
return -2
