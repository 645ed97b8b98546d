-- String layout WITHOUT the lock-ID index (not contract-complete: no
-- retired IDs, no release by lock ID alone, no queue). KEYS lock; ARGV
-- lockID, ttl, key, ttl + tolerance - 1 (ms).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function keepAt(n)
  return 1735689600000 + math.ceil(n / 100) + 5000
end

local v = redis.call('GET', KEYS[1])
local n0, f = 0, ''
if v then
  local _, p, id, es, as, ns, fs = string.find(v, '^([^|]*)|(%d*)|(%d*)|(%d*)|([^|]*)|')
  n0, f = tonumber(ns) or 0, fs or ''
  local e = tonumber(es)
  if p and id ~= '' and e and e > now - 1000 then
    if id == ARGV[1] then return {1, n0, e, tonumber(as)} end
    return {0, e}
  end
end

local fl = (tonumber(t[1]) - 1735689600) * 100000 + math.floor(tonumber(t[2]) / 10)

local n = math.max(n0 + 1, fl)
if n > 900000000000000 then return {-1, n} end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
local val = ARGV[1] .. string.format('|%d|%d|%d|', exp, now, n) .. f .. '|' .. ARGV[3]
local kp = 5000
if n > fl then kp = kp + math.ceil((n - fl) / 100) end
if ttl + 999 >= kp then
  redis.call('SET', KEYS[1], val, 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], val, 'PXAT', string.format('%d', math.max(exp + 999, keepAt(n))))
end
return {1, n, exp, now}
