package redis

import (
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// The Lua scripts of the driver. Each operation is one script, run by SHA
// (EVALSHA, with rueidis falling back to EVAL once per server on NOSCRIPT),
// so each operation is one round trip and atomic on the server. Every script
// reads the server clock with TIME (ms = sec·1000 + ⌊µs/1000⌋) and uses the
// contract's liveness predicate exp > now − tolerance, with the tolerance
// ([driver.ToleranceMs]) passed as an argument.
//
// A lock record is the string
//
//	<lockID (22 chars)><expiresAtMs>|<acquiredAtMs>|<fence>|<normalised key>
//
// and the index key of a lock ID holds the name of its lock record. Both
// carry PX = ttl + tolerance, so Redis drops them once they can no longer be
// live; no sweeper is needed.

// now is the common prologue: the server time in ms.
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaGrant defines grant(lk, fk, ik, id, ttl, key, old, margin, fenceMax,
// tol): it writes a new lock for id on the lock key lk (fence counter fk,
// index key ik), replacing the dead record old (or nil), and returns its
// fence and expiry, or -1 and the would-be fence on overflow (nothing
// written). It needs t and now.
//
// A fence is max(counter + 1, floor), the floor being the server time in
// 10 µs units since 2025-01-01 ([driver.FenceFloor]): it increases even
// when the counter is gone — after a restart without persistence, or a
// failover that lost unreplicated writes — as long as the clock has not
// gone back by more than the time since the key's last acquisition. So the
// counter (field n of the hash fk) only orders acquisitions within one 10
// µs unit or a clock step back, and expires once the floor has passed it
// by margin ms ([driver.FenceKeepMs]): Redis keeps state for live keys
// only.
var luaGrant = `
local function grant(lk, fk, ik, id, ttl, key, old, margin, fmax, tol)
  local fl = (tonumber(t[1]) - ` + fenceEpochSStr + `) * ` + fencePerSStr + ` + math.floor(tonumber(t[2]) / ` + fenceUnitUsStr + `)
  local n = math.max((tonumber(redis.call('HGET', fk, 'n')) or 0) + 1, fl)
  if n > fmax then return -1, n end
  if old then redis.call('DEL', string.sub(ik, 1, -23) .. string.sub(old, 1, 22)) end
  local exp = now + ttl
  local fs = string.format('%d', n)
  local px = string.format('%d', ttl + tol)
  redis.call('HSET', fk, 'n', fs)
  redis.call('PEXPIRE', fk, string.format('%d', math.ceil((n - fl) / ` + fencePerMsStr + `) + margin))
  redis.call('SET', lk, id .. string.format('%d|%d|', exp, now) .. fs .. '|' .. key, 'PX', px)
  redis.call('SET', ik, lk, 'PX', px)
  return n, exp
end
`

// acquireScript: KEYS lock, fence, newIndex, queue; ARGV lockID, ttl,
// key, slotPrefix, fence margin (ms), fenceMax, tolerance, queued ("1" for a queued
// waiter, whose lockID is its waiter ID, else ""), waiter liveness (ms),
// the waiter's inbox (inboxLen characters, see watch.go).
// Returns {0, exp} when locked, {-1, next} on fence overflow (nothing
// written), {1, fence, exp, acquiredAt} when acquired.
//
// Hand-off (see watch.go): a contended attempt of a queued waiter joins
// the key's queue (a sorted set scored by the server time of joining; ZADD
// NX keeps the first position) with the member lockID..inbox..ttl, and renews the
// waiter's liveness marker <sp>w:<lockID> (PX waiterLiveMs); a successful
// one leaves the queue. A release grants the key to the queue's head, writing the
// lock under the waiter's ID; the waiter's next attempt finds its own live
// lock and claims it (normally the waiter learns of the grant from the
// release's message and does not need that attempt).
//
// A lock ID whose index key holds "" is gone: a waiter that stopped
// waiting, or a plain acquisition released because its outcome was
// unknown (see releaseScript). An attempt under a gone ID neither queues
// nor acquires; it returns {0, exp} or {0, 0}. This makes an attempt that
// reaches the server after its caller gave up, and after the release that
// compensated for it, harmless.
var acquireScript = luaNow + luaGrant + `
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
      redis.call('PEXPIRE', KEYS[4], ` + queueTTLStr + `)
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
`

// releaseScript: KEYS index[, queue]; ARGV lockID, slotPrefix, tolerance,
// fence margin (ms), fenceMax[, gone TTL (ms)[, queue member]].
// Returns 1 released, -1 not found (or owned by another ID), -2 expired.
// Ownership is checked before anything is deleted: another owner's record
// is never touched.
//
// A release hands the key over to the head of its waiter queue, if any:
// it grants the lock to that waiter (see acquireScript) and publishes
// "<waiterID>|<fence>|<expiresAtMs>|<acquiredAtMs>" on the inbox channel
// of the waiter's process (<sp>in:<inbox>; SPUBLISH, so the message stays
// on the slot's shard), which wakes only that waiter and reaches only that
// process; without a grant it publishes "" on the key's channel, which
// wakes every plain watcher.
// Entries of waiters whose liveness marker has lapsed (the waiter
// crashed, or stopped renewing it) are dropped.
//
// With a gone TTL the lock ID is retired: its index key is left holding ""
// for that long (PX), whether or not it had a lock, so that an acquire
// attempt under that ID still on its way to the server does nothing (see
// acquireScript). The driver retires the IDs of waiters that stop waiting
// and of plain acquisitions whose outcome it does not know. Every script
// reads "" at an index key as "no lock".
//
// With the optional queue key and member it is a waiter's leave: the
// member leaves the queue first, and a lock granted to it is released
// (and handed on) like any other.
var releaseScript = `
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
` + luaNow + luaGrant + `
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
    local n, exp = grant(lk, sp .. 'fence:' .. body, sp .. 'id:' .. id, id, tonumber(string.sub(h[1], 23 + ` + inboxLenStr + `)),
      string.match(v, '^%d+|%d+|%d+|(.*)$', 23), nil, tonumber(ARGV[4]), tonumber(ARGV[5]), tol)
    if n > 0 then
      redis.pcall('SPUBLISH', sp .. 'in:' .. string.sub(h[1], 23, 22 + ` + inboxLenStr + `), id .. string.format('|%d|%d|%d', n, exp, now))
      granted = true
    end
    break
  end
end
if not granted then redis.pcall('SPUBLISH', sp .. 'rel:' .. body, '') end
if (not e) or e <= now - tol then return -2 end
return 1
`

// The fence floor's constants, for the scripts (see driver.FenceFloor).
var (
	fenceEpochSStr = formatInt(driver.FenceEpochMs / 1000)
	fencePerMsStr  = formatInt(driver.FencePerMs)
	fencePerSStr   = formatInt(driver.FencePerMs * 1000)
	fenceUnitUsStr = formatInt(1000 / driver.FencePerMs)
	fenceMarginStr = formatInt(driver.FenceMarginMs)
)

// goneTTLStr is how long (ms) a retired lock ID stays retired (see
// releaseScript): far longer than an abandoned request can still take to
// reach the server (abandonGrace after its caller gave up, see exec.go,
// plus the client's connection timeouts).
const goneTTLStr = "60000"

// queueTTLStr is the expiry (ms) of a waiter queue, renewed by every
// queued attempt: a queue whose waiters all stopped attempting (they
// crashed) disappears after it.
const queueTTLStr = "60000"

// waiterLive is how long a queued waiter's liveness marker lasts after its
// latest attempt: a release grants the key only to a waiter whose marker
// is live, so a waiter that dies while queued is skipped at most this long
// after its last attempt. Live waiters renew it well within that (see
// [driver.Handoff] Renew).
const (
	waiterLive  = 3 * time.Second
	waiterRenew = time.Second
	// A waiter that gets no notifications (no subscription) learns of a
	// grant only by looking: under Guard it looks every unheardRenew (a
	// lock lookup) and makes a full attempt, which renews its place, every
	// unheardFull (see [driver.PollingHandoff]).
	unheardRenew = 20 * time.Millisecond
	unheardFull  = 500 * time.Millisecond
)

// inboxLenStr is inboxLen in decimal, for the scripts.
const inboxLenStr = "8"

// extendScript: KEYS index; ARGV lockID, ttl, tolerance.
// Returns {1, exp} extended, {-1} not found, {-2} expired (deleted).
const extendScript = `
local lk = redis.call('GET', KEYS[1])
if (not lk) or lk == '' then return {-1} end
local v = redis.call('GET', lk)
if (not v) or string.sub(v, 1, 22) ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {-1}
end
` + luaNow + `
local e = tonumber(string.match(v, '^(%d+)|', 23))
if (not e) or e <= now - tonumber(ARGV[3]) then
  redis.call('DEL', lk, KEYS[1])
  return {-2}
end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
local px = string.format('%d', ttl + tonumber(ARGV[3]))
local rest = string.match(v, '^%d+(|.*)$', 23)
redis.call('SET', lk, ARGV[1] .. string.format('%d', exp) .. rest, 'PX', px)
redis.call('PEXPIRE', KEYS[1], px)
return {1, exp}
`

// isLockedScript: KEYS lock; ARGV cleanup ("1"/"0"), slotPrefix,
// tolerance, cleanup guard.
// Returns 1 when a live lock exists, else 0. With cleanup, a record more
// than 2000 ms past its expiry (and its index) is deleted in the same
// atomic step; the result is unchanged.
const isLockedScript = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
` + luaNow + `
local e = tonumber(string.match(v, '^(%d+)|', 23))
if e and e > now - tonumber(ARGV[3]) then return 1 end
if ARGV[1] == '1' and ((not e) or now - e > tonumber(ARGV[4])) then
  redis.call('DEL', KEYS[1], ARGV[2] .. 'id:' .. string.sub(v, 1, 22))
end
return 0
`

// lookupKeyScript: KEYS lock; ARGV tolerance. Returns the live record or
// false.
const lookupKeyScript = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
` + luaNow + `
local e = tonumber(string.match(v, '^(%d+)|', 23))
if e and e > now - tonumber(ARGV[1]) then return v end
return false
`

// lookupIDScript: KEYS index; ARGV lockID, tolerance. Returns the live record of
// lockID or false.
const lookupIDScript = `
local lk = redis.call('GET', KEYS[1])
if (not lk) or lk == '' then return false end
local v = redis.call('GET', lk)
if (not v) or string.sub(v, 1, 22) ~= ARGV[1] then return false end
` + luaNow + `
local e = tonumber(string.match(v, '^(%d+)|', 23))
if e and e > now - tonumber(ARGV[2]) then return v end
return false
`

// A fenced record is the string <fence>|<expiresAtMs or 0>|<value>.

// putRecordScript: KEYS record; ARGV fence, value, ttlMs ("0": none).
// Returns {1, fence} stored or {0, storedFence} stale.
const putRecordScript = `
local cur = redis.call('GET', KEYS[1])
local f = tonumber(ARGV[1])
if cur then
  local sf = tonumber(string.match(cur, '^(%d+)|'))
  if sf and sf > f then return {0, sf} end
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
` + luaNow + `
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%d', now + ttl) .. '|' .. ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1] .. '|0|' .. ARGV[2])
end
return {1, f}
`

// deleteRecordScript: KEYS record; ARGV fence. Returns 1 when deleted.
const deleteRecordScript = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local sf = tonumber(string.match(cur, '^(%d+)|'))
if sf and sf > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
`

// rateScript: KEYS rate; ARGV emission interval (µs, decimal), n, burst.
// GCRA as go-redis/redis_rate computes it, in microseconds since
// 2025-01-01 (so that doubles keep sub-µs precision). Returns
// {allowed, remaining, retryAfterµs, resetAfterµs}, the durations as
// decimal strings. A granted request with n > 0 stores the new theoretical
// arrival time; a refused one, or n = 0, writes nothing.
const rateScript = `
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1735689600) * 1000000 + tonumber(t[2])
local ei = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
local rel = 0
if tat and tat > now then rel = tat - now end
local newTat = rel + ei * n
local diff = ei * burst - newTat
if diff < 0 then
  return {0, 0, string.format('%.3f', -diff), string.format('%.3f', rel)}
end
if n > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', now + newTat), 'PX', string.format('%d', math.ceil(newTat / 1000) + 1))
end
return {n, math.floor(diff / ei), '0', string.format('%.3f', newTat)}
`

// scripts holds the compiled scripts of a driver.
type scripts struct {
	acquire, release, extend, isLocked, lookupKey, lookupID *rueidis.Lua
	putRecord, deleteRecord, rate                           *rueidis.Lua
}

func newScripts() *scripts {
	return &scripts{
		acquire:      rueidis.NewLuaScript(acquireScript),
		release:      rueidis.NewLuaScript(releaseScript),
		extend:       rueidis.NewLuaScript(extendScript),
		isLocked:     rueidis.NewLuaScript(isLockedScript),
		lookupKey:    rueidis.NewLuaScript(lookupKeyScript),
		lookupID:     rueidis.NewLuaScript(lookupIDScript),
		putRecord:    rueidis.NewLuaScript(putRecordScript),
		deleteRecord: rueidis.NewLuaScript(deleteRecordScript),
		rate:         rueidis.NewLuaScript(rateScript),
	}
}
