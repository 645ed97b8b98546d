-- String layout probe, LEAN variant (TIME's fields converted once), acquire. KEYS lock, index[, queue]; ARGV lockID,
-- ttl, key, ttl + tolerance - 1 (ms)[, inbox, waiter liveness (ms)].
-- The lock of a key and its fence counter are ONE string:
--   <lockID>|<expiresAtMs>|<acquiredAtMs>|<last fence>|<flags>|<key>
-- free: |||<last fence>|<flags>|   (flags: 'r' watched, 'w<ms>' queue expiry)
-- Returns {0, exp} locked, {-1, next} fence overflow, {1, fence, exp, acquiredAt}.
local t = redis.call('TIME')
local ts, tus = tonumber(t[1]), tonumber(t[2])
local now = ts * 1000 + math.floor(tus / 1000)

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
    if KEYS[3] then
      if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[6], 'GET') == '' then
        redis.call('SET', KEYS[2], '', 'PX', 60000)
        return {0, e}
      end
      redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1] .. ARGV[5] .. ARGV[2])
      local w = tonumber(string.match(f, 'w(%d+)'))
      if (not w) or w < now + 30000 then
        redis.call('PEXPIRE', KEYS[3], 60000)
        local nf = string.gsub(f, 'w%d+', '') .. 'w' .. string.format('%d', now + 60000)
        redis.call('SET', KEYS[1], string.sub(v, 1, p - #f - 1) .. nf .. string.sub(v, p), 'KEEPTTL')
      end
    end
    return {0, e}
  end
end

local fl = (ts - 1735689600) * 100000 + math.floor(tus / 10)

local n = math.max(n0 + 1, fl)
if n > 900000000000000 then return {-1, n} end
local ttl = tonumber(ARGV[2])
if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[4], 'GET') == '' then
  redis.call('SET', KEYS[2], '', 'PX', 60000)
  return {0, 0}
end
local exp = now + ttl
local val = ARGV[1] .. string.format('|%d|%d|%d|', exp, now, n) .. f .. '|' .. ARGV[3]
local kp = 5000
if n > fl then kp = kp + math.ceil((n - fl) / 100) end
if ttl + 999 >= kp then
  redis.call('SET', KEYS[1], val, 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], val, 'PXAT', string.format('%d', math.max(exp + 999, keepAt(n))))
end
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[1] .. ARGV[5] .. ARGV[2]) end
return {1, n, exp, now}
