
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

local v = redis.call('GET', KEYS[1])
if v then
  local e = tonumber(string.match(v, '^(%d+)|', 23))
  if e and e > now - tonumber(ARGV[7]) then
    if string.sub(v, 1, 22) == ARGV[1] then
      local a, f = string.match(v, '^%d+|(%d+)|(%d+)|', 23)
      return {1, tonumber(f), e, tonumber(a)}
    end
    if ARGV[8] ~= '' and redis.call('GET', KEYS[3]) ~= '' then
      redis.call('ZADD', KEYS[4], 'NX', now, ARGV[1] .. ARGV[10] .. ARGV[2])
      redis.call('PEXPIRE', KEYS[4], 60000)
      redis.call('SET', ARGV[4] .. 'w:' .. ARGV[1], '1', 'PX', ARGV[9])
    end
    return {0, e}
  end
end
if redis.call('GET', KEYS[3]) == '' then return {0, 0} end
local n, exp = grant(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], v, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
if n < 0 then return {-1, exp} end
if ARGV[8] ~= '' then redis.call('ZREM', KEYS[4], ARGV[1] .. ARGV[10] .. ARGV[2]) end
return {1, n, exp, now}
