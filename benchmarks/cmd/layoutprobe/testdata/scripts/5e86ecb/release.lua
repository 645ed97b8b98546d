
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[7]) end
local lk = redis.call('GET', KEYS[1])
if lk == '' then return -1 end
local gone = ARGV[6]
if gone then redis.call('SET', KEYS[1], '', 'PX', gone) end
if not lk then return -1 end
local v = redis.call('GET', lk)
if (not v) or string.sub(v, 1, 22) ~= ARGV[1] then
  if not gone then redis.call('DEL', KEYS[1]) end
  return -1
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function grant(lk, fk, ik, id, ttl, key, old, margin, fmax, tol)
  local fl = (tonumber(t[1]) - 1735689600) * 100000 + math.floor(tonumber(t[2]) / 10)
  local n = math.max((tonumber(redis.call('HGET', fk, 'n')) or 0) + 1, fl)
  if n > fmax then return -1, n end
  if old then redis.call('DEL', string.sub(ik, 1, -23) .. string.sub(old, 1, 22)) end
  local exp = now + ttl
  local fs = string.format('%d', n)
  local px = string.format('%d', ttl + tol)
  redis.call('HSET', fk, 'n', fs)
  redis.call('PEXPIRE', fk, string.format('%d', math.ceil((n - fl) / 100) + margin))
  redis.call('SET', lk, id .. string.format('%d|%d|', exp, now) .. fs .. '|' .. key, 'PX', px)
  redis.call('SET', ik, lk, 'PX', px)
  return n, exp
end

local e = tonumber(string.match(v, '^(%d+)|', 23))
local tol = tonumber(ARGV[3])
if gone then redis.call('DEL', lk) else redis.call('DEL', lk, KEYS[1]) end
local sp = ARGV[2]
local body = string.sub(lk, string.len(sp) + 6)
local q = sp .. 'q:' .. body
local granted = false
while true do
  local h = redis.call('ZPOPMIN', q)
  if #h == 0 then break end
  local id = string.sub(h[1], 1, 22)
  if redis.call('EXISTS', sp .. 'w:' .. id) == 1 then
    local n, exp = grant(lk, sp .. 'fence:' .. body, sp .. 'id:' .. id, id, tonumber(string.sub(h[1], 23 + 8)),
      string.match(v, '^%d+|%d+|%d+|(.*)$', 23), nil, tonumber(ARGV[4]), tonumber(ARGV[5]), tol)
    if n > 0 then
      redis.pcall('SPUBLISH', sp .. 'in:' .. string.sub(h[1], 23, 22 + 8), id .. string.format('|%d|%d|%d', n, exp, now))
      granted = true
    end
    break
  end
end
if not granted then redis.pcall('SPUBLISH', sp .. 'rel:' .. body, '') end
if (not e) or e <= now - tol then return -2 end
return 1
