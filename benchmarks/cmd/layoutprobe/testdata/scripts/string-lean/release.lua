-- String layout probe, LEAN variant (always PXAT keepAt(n): no read of the acquisition time), release. KEYS index[, lock, queue]; ARGV lockID,
-- slotPrefix[, gone TTL (ms) or "", queue member or ""].
-- Returns 1 released, -1 not found (or another ID's), -2 expired.
local function keepAt(n)
  return 1735689600000 + math.ceil(n / 100) + 5000
end

local lk, q = KEYS[2], KEYS[3]
local gone = ARGV[3]
if ARGV[4] and ARGV[4] ~= '' then redis.call('ZREM', q, ARGV[4]) end
if not lk then
  lk = redis.call('GET', KEYS[1])
  if (not lk) or lk == '' then return -1 end
end
if gone and gone ~= '' then redis.call('SET', KEYS[1], '', 'PX', gone) else gone = nil end
local v = redis.call('GET', lk)
if not v then return -1 end
local _, p, id, es, as, ns, fs = string.find(v, '^([^|]*)|(%d*)|(%d*)|(%d*)|([^|]*)|')
if id ~= ARGV[1] then return -1 end
local e, n0 = tonumber(es), tonumber(ns) or 0
local kd = keepAt(n0)
local t, now
local live = e and e + 999 >= kd
if not live then
  t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  live = e and e > now - 1000
end
local r, w = false, nil
if fs ~= '' then
  r = string.find(fs, 'r', 1, true) ~= nil
  w = string.match(fs, 'w%d+')
end
local sp = ARGV[2]
local body
if not q then
  body = string.sub(lk, string.len(sp) + 6)
  q = sp .. 'q:' .. body
end
local granted, emptied = false, false
while w do
  local hd = redis.call('ZPOPMIN', q)
  if #hd == 0 then
    emptied = true
    break
  end
  local wid = string.sub(hd[1], 1, 22)
  local wik = sp .. 'id:' .. wid
  if wid ~= ARGV[1] and redis.call('GET', wik) == lk then
    if not t then
      t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    local fl = (tonumber(t[1]) - 1735689600) * 100000 + math.floor(tonumber(t[2]) / 10)
    local n = math.max(n0 + 1, fl)
    if n <= 900000000000000 then
      local ttl = tonumber(string.sub(hd[1], 23 + 8))
      local exp = now + ttl
      local fstr = string.format('%d', n)
      redis.call('SET', lk, wid .. string.format('|%d|%d|', exp, now) .. fstr .. '|' .. fs .. '|' .. string.sub(v, p + 1),
        'PXAT', string.format('%d', math.max(exp + 999, keepAt(n))))
      redis.call('PEXPIRE', wik, ttl + 1000)
      redis.pcall('SPUBLISH', sp .. 'in:' .. string.sub(hd[1], 23, 22 + 8), wid .. '|' .. fstr .. string.format('|%d|%d', exp, now))
      granted = true
    end
    break
  end
end
if not granted then
  if emptied then fs = string.gsub(fs, 'w%d+', '') end
  redis.call('SET', lk, '|||' .. ns .. '|' .. fs .. '|', 'PXAT', string.format('%d', kd))
  if r then
    body = body or string.sub(lk, string.len(sp) + 6)
    redis.pcall('SPUBLISH', sp .. 'rel:' .. body, '')
  end
end
if not gone then redis.call('DEL', KEYS[1]) end
if live then return 1 end
return -2
