
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
local h = redis.call('HMGET', lk, 'id', 'e', 'n', 'r', 'w', 'a')
if h[1] ~= ARGV[1] then return -1 end
local e, n0 = tonumber(h[2]), tonumber(h[3]) or 0
local kd = keepAt(n0)
local t, now
local live = e and e + 999 >= kd
if not live then
  t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  live = e and e > now - 1000
end
local sp = ARGV[2]
local body
if not q then
  body = string.sub(lk, string.len(sp) + 6)
  q = sp .. 'q:' .. body
end
local granted, emptied = false, false
while h[5] do
  local hd = redis.call('ZPOPMIN', q)
  if #hd == 0 then
    emptied = true
    break
  end
  local id = string.sub(hd[1], 1, 22)
  local wik = sp .. 'id:' .. id
  if id ~= ARGV[1] and redis.call('GET', wik) == lk then
    if not t then
      t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    
local fl = (tonumber(t[1]) - 1735689600) * 100000 + math.floor(tonumber(t[2]) / 10)

    local n = math.max(n0 + 1, fl)
    if n <= 900000000000000 then
      local ttl = tonumber(string.sub(hd[1], 23 + 8))
      local exp = now + ttl
      local fs = string.format('%d', n)
      redis.call('HSET', lk, 'id', id, 'e', exp, 'a', now, 'n', fs)
      redis.call('PEXPIREAT', lk, math.max(exp + 999, keepAt(n)))
      redis.call('PEXPIRE', wik, ttl + 1000)
      redis.pcall('SPUBLISH', sp .. 'in:' .. string.sub(hd[1], 23, 22 + 8), id .. '|' .. fs .. string.format('|%d|%d', exp, now))
      granted = true
    end
    break
  end
end
if not granted then
  if emptied then redis.call('HDEL', lk, 'id', 'w') else redis.call('HDEL', lk, 'id') end
  if (tonumber(h[6]) or 0) + 5000 >= kd then
    redis.call('PEXPIRE', lk, '5000')
  else
    redis.call('PEXPIREAT', lk, kd)
  end
  if h[4] then
    body = body or string.sub(lk, string.len(sp) + 6)
    redis.pcall('SPUBLISH', sp .. 'rel:' .. body, '')
  end
end
if not gone then redis.call('DEL', KEYS[1]) end
if live then return 1 end
return -2
