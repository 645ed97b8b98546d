
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function keepAt(n)
  return 1735689600000 + math.ceil(n / 100) + 5000
end

local h = redis.call('HMGET', KEYS[1], 'id', 'e', 'n', 'a', 'w')
local e = tonumber(h[2])
if h[1] and e and e > now - 1000 then
  if h[1] == ARGV[1] then return {1, tonumber(h[3]), e, tonumber(h[4])} end
  if KEYS[3] then
    if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[6], 'GET') == '' then
      redis.call('SET', KEYS[2], '', 'PX', 60000)
      return {0, e}
    end
    redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1] .. ARGV[5] .. ARGV[2])
    local w = tonumber(h[5])
    if (not w) or w < now + 30000 then
      redis.call('PEXPIRE', KEYS[3], 60000)
      redis.call('HSET', KEYS[1], 'w', now + 60000)
    end
  end
  return {0, e}
end

local fl = (tonumber(t[1]) - 1735689600) * 100000 + math.floor(tonumber(t[2]) / 10)

local n = math.max((tonumber(h[3]) or 0) + 1, fl)
if n > 900000000000000 then return {-1, n} end
local ttl = tonumber(ARGV[2])
if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[4], 'GET') == '' then
  redis.call('SET', KEYS[2], '', 'PX', 60000)
  return {0, 0}
end
local exp = now + ttl
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'e', string.format('%d', exp), 'a', string.format('%d', now), 'n', string.format('%d', n), 'k', ARGV[3])
local kp = 5000
if n > fl then kp = kp + math.ceil((n - fl) / 100) end
if ttl + 999 >= kp then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIREAT', KEYS[1], math.max(exp + 999, keepAt(n)))
end
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[1] .. ARGV[5] .. ARGV[2]) end
return {1, n, exp, now}
