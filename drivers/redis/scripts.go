package redis

import (
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// The Lua scripts of the driver. Each operation is one script, run by SHA
// (EVALSHA, with rueidis falling back to EVAL once per server on NOSCRIPT),
// so each operation is one round trip and atomic on the server. Every script
// that judges or sets an expiry reads the server clock with TIME (ms =
// sec·1000 + ⌊µs/1000⌋) and uses the contract's liveness predicate
// e > now − tolerance ([driver.ToleranceMs], written into the scripts
// as a constant, like every other constant: fewer arguments are cheaper to
// pass).
//
// The lock of a key and its fence counter are one hash:
//
//	<sp>lock:<body>   id <lockID>  e <expiresAtMs>  a <acquiredAtMs>
//	                  n <last fence>  k <normalised key>  [r 1]  [w <ms>]
//
// A free key has no id field (the other fields stay: n is the counter).
// The hash expires PX max(ttl + tolerance, the counter's keep time) after
// each acquisition and extension, and a release shortens it to the
// counter's keep time (see luaKeep), so Redis keeps state for live keys and
// recently used counters only. r marks a key that plain release watchers
// wait for (see watchScript): only then does a release without a grant
// publish on the key's channel. w marks a key with a waiter queue, and is
// the queue's expiry: only then does a release look at the queue, and a
// queued attempt renews the queue's PEXPIRE (and w) only when less than
// half of it is left. A release that finds the queue empty clears w.
//
// The index key of a lock ID, <sp>id:<lockID>, holds the name of its lock
// hash (PX ttl + tolerance) so that Release, Extend and LookupByID work from
// the lock ID alone; "" marks a retired ID. An index that outlives its lock
// (a lock granted to another ID, or one that expired) is harmless: every
// script compares the hash's id with the lock ID. A queued waiter's index
// is its liveness marker (see acquireScript).

// luaNow is the common prologue: the server time in ms.
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaFloor defines fl, the fence floor at the server time t: the number of
// 10 µs units since 2025-01-01 ([driver.FenceFloor]).
var luaFloor = `
local fl = (tonumber(t[1]) - ` + fenceEpochSStr + `) * ` + fencePerSStr + ` + math.floor(tonumber(t[2]) / ` + fenceUnitUsStr + `)
`

// luaKeep defines keepAt(n): the Unix time (ms) until which the counter n
// must be kept: when the floor has passed it by [driver.FenceMarginMs]
// (see [driver.FenceKeepMs]).
//
// A fence is max(counter + 1, floor): it increases even when the counter
// is gone — after a restart without persistence, or a failover that lost
// unreplicated writes — as long as the clock has not gone back by more
// than the time since the key's last acquisition. So the counter only
// orders acquisitions within one 10 µs unit or a clock step back, and is
// kept no longer than that needs.
//
// The hash of a key expires (PEXPIREAT) at max(e + tolerance − 1,
// keepAt(n)): one millisecond before the lock stops being live, or later
// if the counter must outlive it. So while e + tolerance − 1 ≥ keepAt(n),
// a hash that is still there holds a live lock, and a release can tell
// "released" from "expired" without reading the clock.
var luaKeep = `
local function keepAt(n)
  return ` + fenceEpochMsStr + ` + math.ceil(n / ` + fencePerMsStr + `) + ` + fenceMarginStr + `
end
`

// acquireScript: KEYS lock, index[, queue]; ARGV lockID, ttl, key,
// ttl + tolerance − 1 (ms)[, inbox, waiter liveness (ms)] — the queue and
// the last two only for a queued waiter, whose lockID is its waiter ID.
// Numbers go to redis.call as strings made by the client or by
// string.format('%d'): Redis 7.0 turns a Lua number argument into a string
// with snprintf("%.17g"), which costs more than the command it feeds.
// Returns {0, exp} when locked, {-1, next} on fence overflow (nothing
// written), {1, fence, exp, acquiredAt} when acquired.
//
// Hand-off (see watch.go): a contended attempt of a queued waiter joins
// the key's queue (a sorted set scored by the server time of joining; ZADD
// NX keeps the first position) with the member lockID..inbox..ttl, and
// renews the waiter's liveness: its index key holds the lock hash's name
// for waiterLiveMs (PX). A successful attempt leaves the queue. A release
// grants the key to the queue's head whose index still names the lock,
// writing the lock under the waiter's ID; the waiter's next attempt finds
// its own live lock and claims it (normally the waiter learns of the grant
// from the release's message and does not need that attempt).
//
// A lock ID whose index key holds "" is retired: a waiter that stopped
// waiting, or a plain acquisition released because its outcome was
// unknown (see releaseScript). An attempt under a retired ID neither
// queues nor acquires; it returns {0, exp} or {0, 0}. This makes an attempt
// that reaches the server after its caller gave up, and after the release
// that compensated for it, harmless. The index is written with SET … GET,
// which checks and writes in one command; a retired ID is put back.
var acquireScript = luaNow + luaKeep + `
local h = redis.call('HMGET', KEYS[1], 'id', 'e', 'n', 'a', 'w')
local e = tonumber(h[2])
if h[1] and e and e > now - ` + tolStr + ` then
  if h[1] == ARGV[1] then return {1, tonumber(h[3]), e, tonumber(h[4])} end
  if KEYS[3] then
    if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[6], 'GET') == '' then
      redis.call('SET', KEYS[2], '', 'PX', ` + goneTTLStr + `)
      return {0, e}
    end
    redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1] .. ARGV[5] .. ARGV[2])
    local w = tonumber(h[5])
    if (not w) or w < now + ` + queueRenewStr + ` then
      redis.call('PEXPIRE', KEYS[3], ` + queueTTLStr + `)
      redis.call('HSET', KEYS[1], 'w', now + ` + queueTTLStr + `)
    end
  end
  return {0, e}
end
` + luaFloor + `
local n = math.max((tonumber(h[3]) or 0) + 1, fl)
if n > ` + fenceMaxStr + ` then return {-1, n} end
local ttl = tonumber(ARGV[2])
if redis.call('SET', KEYS[2], KEYS[1], 'PX', ARGV[4], 'GET') == '' then
  redis.call('SET', KEYS[2], '', 'PX', ` + goneTTLStr + `)
  return {0, 0}
end
local exp = now + ttl
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'e', string.format('%d', exp), 'a', string.format('%d', now), 'n', string.format('%d', n), 'k', ARGV[3])
local kp = ` + fenceMarginStr + `
if n > fl then kp = kp + math.ceil((n - fl) / ` + fencePerMsStr + `) end
if ttl + ` + tolM1Str + ` >= kp then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIREAT', KEYS[1], math.max(exp + ` + tolM1Str + `, keepAt(n)))
end
if KEYS[3] then redis.call('ZREM', KEYS[3], ARGV[1] .. ARGV[5] .. ARGV[2]) end
return {1, n, exp, now}
`

// releaseScript: KEYS index[, lock, queue]; ARGV lockID, slotPrefix[,
// gone TTL (ms) or "", queue member or ""]. Without the lock key (a keyless
// release by lock ID) the index names it.
// Returns 1 released, -1 not found (or owned by another ID), -2 expired.
// Ownership is checked before anything is written: another owner's lock
// is never touched.
//
// A release hands the key over to the head of its waiter queue, if any:
// it grants the lock to that waiter (see acquireScript) and publishes
// "<waiterID>|<fence>|<expiresAtMs>|<acquiredAtMs>" on the inbox channel
// of the waiter's process (<sp>in:<inbox>; SPUBLISH, so the message stays
// on the slot's shard), which wakes only that waiter and reaches only that
// process; without a grant it publishes "" on the key's channel if plain
// watchers wait for the key (field r), which wakes them.
// Entries of waiters whose index no longer names the lock (the waiter
// crashed and its marker lapsed, or it left) are dropped.
//
// With a gone TTL the lock ID is retired: its index key is left holding ""
// for that long (PX), whether or not it had a lock, so that an acquire
// attempt under that ID still on its way to the server does nothing (see
// acquireScript). The driver retires the IDs of waiters that stop waiting
// and of plain acquisitions whose outcome it does not know. Every script
// reads "" at an index key as "no lock".
//
// With a queue member it is a waiter's leave: the member leaves the queue
// first, and a lock granted to it is released (and handed on) like any
// other.
var releaseScript = luaKeep + `
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
local live = e and e + ` + tolM1Str + ` >= kd
if not live then
  t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  live = e and e > now - ` + tolStr + `
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
    ` + luaFloor + `
    local n = math.max(n0 + 1, fl)
    if n <= ` + fenceMaxStr + ` then
      local ttl = tonumber(string.sub(hd[1], 23 + ` + inboxLenStr + `))
      local exp = now + ttl
      local fs = string.format('%d', n)
      redis.call('HSET', lk, 'id', id, 'e', exp, 'a', now, 'n', fs)
      redis.call('PEXPIREAT', lk, math.max(exp + ` + tolM1Str + `, keepAt(n)))
      redis.call('PEXPIRE', wik, ttl + ` + tolStr + `)
      redis.pcall('SPUBLISH', sp .. 'in:' .. string.sub(hd[1], 23, 22 + ` + inboxLenStr + `), id .. '|' .. fs .. string.format('|%d|%d', exp, now))
      granted = true
    end
    break
  end
end
if not granted then
  if emptied then redis.call('HDEL', lk, 'id', 'w') else redis.call('HDEL', lk, 'id') end
  if (tonumber(h[6]) or 0) + ` + fenceMarginStr + ` >= kd then
    redis.call('PEXPIRE', lk, '` + fenceMarginStr + `')
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
`

// The fence floor's constants, for the scripts (see driver.FenceFloor).
var (
	fenceEpochSStr  = formatInt(driver.FenceEpochMs / 1000)
	fencePerMsStr   = formatInt(driver.FencePerMs)
	fencePerSStr    = formatInt(driver.FencePerMs * 1000)
	fenceUnitUsStr  = formatInt(1000 / driver.FencePerMs)
	fenceMarginStr  = formatInt(driver.FenceMarginMs)
	fenceEpochMsStr = formatInt(driver.FenceEpochMs)
	// tolM1Str is the tolerance less 1 ms: a lock hash expires one
	// millisecond before its lock stops being live (see luaKeep).
	tolM1Str = formatInt(driver.ToleranceMs - 1)
)

// goneTTLStr is how long (ms) a retired lock ID stays retired (see
// releaseScript): far longer than an abandoned request can still take to
// reach the server (abandonGrace after its caller gave up, see exec.go,
// plus the client's connection timeouts).
const goneTTLStr = "60000"

// queueTTLStr is the expiry (ms) of a waiter queue, renewed by a queued
// attempt that finds less than queueRenewStr of it left: a queue whose
// waiters all stopped attempting (they crashed) disappears after it.
const (
	queueTTLStr   = "60000"
	queueRenewStr = "30000"
)

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

// extendScript: KEYS index[, lock]; ARGV lockID, ttl. Without the lock key
// the index names it.
// Returns {1, exp} extended, {-1} not found, {-2} expired (the lock is
// freed, its counter kept).
var extendScript = `
local lk = KEYS[2]
if not lk then
  lk = redis.call('GET', KEYS[1])
  if (not lk) or lk == '' then return {-1} end
end
local h = redis.call('HMGET', lk, 'id', 'e', 'n')
if h[1] ~= ARGV[1] then return {-1} end
` + luaNow + luaKeep + `
local e = tonumber(h[2])
if (not e) or e <= now - ` + tolStr + ` then
  redis.call('HDEL', lk, 'id')
  redis.call('DEL', KEYS[1])
  return {-2}
end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
redis.call('HSET', lk, 'e', exp)
redis.call('PEXPIREAT', lk, math.max(exp + ` + tolM1Str + `, keepAt(tonumber(h[3]) or 0)))
redis.call('PEXPIRE', KEYS[1], ttl + ` + tolStr + `)
return {1, exp}
`

// luaRecord builds the lookup reply from the fields h of a lock hash
// (id, e, a, n, k): <lockID><expiresAtMs>|<acquiredAtMs>|<fence>|<key>, the
// form parseRecord reads.
const luaRecord = `h[1] .. h[2] .. '|' .. h[3] .. '|' .. h[4] .. '|' .. (h[5] or '')`

// isLockedScript: KEYS lock; ARGV cleanup ("1"/"0"), slotPrefix.
// Returns 1 when a live lock exists, else 0. With cleanup, a lock more
// than the cleanup guard past its expiry (and its index) is deleted in the
// same atomic step, its counter kept; the result is unchanged.
var isLockedScript = `
local h = redis.call('HMGET', KEYS[1], 'id', 'e')
if not h[1] then return 0 end
` + luaNow + `
local e = tonumber(h[2])
if e and e > now - ` + tolStr + ` then return 1 end
if ARGV[1] == '1' and ((not e) or now - e > ` + guardStr + `) then
  redis.call('HDEL', KEYS[1], 'id')
  redis.call('DEL', ARGV[2] .. 'id:' .. h[1])
end
return 0
`

// lookupKeyScript: KEYS lock. Returns the live record or false.
var lookupKeyScript = `
local h = redis.call('HMGET', KEYS[1], 'id', 'e', 'a', 'n', 'k')
if not h[1] then return false end
` + luaNow + `
local e = tonumber(h[2])
if e and e > now - ` + tolStr + ` then return ` + luaRecord + ` end
return false
`

// lookupIDScript: KEYS index; ARGV lockID. Returns the live record of
// lockID or false.
var lookupIDScript = `
local lk = redis.call('GET', KEYS[1])
if (not lk) or lk == '' then return false end
local h = redis.call('HMGET', lk, 'id', 'e', 'a', 'n', 'k')
if h[1] ~= ARGV[1] then return false end
` + luaNow + `
local e = tonumber(h[2])
if e and e > now - ` + tolStr + ` then return ` + luaRecord + ` end
return false
`

// watchScript: KEYS lock. Marks the key as watched by plain release
// watchers (field r, so that releases publish on its channel; a hash made
// for the mark alone expires after queueTTLStr) and returns 1 if a live
// lock holds it, else 0.
var watchScript = `
if redis.call('HSET', KEYS[1], 'r', '1') == 1 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ` + queueTTLStr + `)
end
local h = redis.call('HMGET', KEYS[1], 'id', 'e')
if not h[1] then return 0 end
` + luaNow + `
local e = tonumber(h[2])
if e and e > now - ` + tolStr + ` then return 1 end
return 0
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
	acquire, release, extend, isLocked, lookupKey, lookupID, watch *rueidis.Lua
	putRecord, deleteRecord, rate                                  *rueidis.Lua
	// The permit scripts (permits.go).
	acquirePermit, releasePermit, extendPermit, listPermits *rueidis.Lua
}

func newScripts() *scripts {
	return &scripts{
		acquire:      rueidis.NewLuaScript(acquireScript),
		release:      rueidis.NewLuaScript(releaseScript),
		extend:       rueidis.NewLuaScript(extendScript),
		isLocked:     rueidis.NewLuaScript(isLockedScript),
		lookupKey:    rueidis.NewLuaScript(lookupKeyScript),
		lookupID:     rueidis.NewLuaScript(lookupIDScript),
		watch:        rueidis.NewLuaScript(watchScript),
		putRecord:    rueidis.NewLuaScript(putRecordScript),
		deleteRecord: rueidis.NewLuaScript(deleteRecordScript),
		rate:         rueidis.NewLuaScript(rateScript),

		acquirePermit: rueidis.NewLuaScript(acquirePermitScript),
		releasePermit: rueidis.NewLuaScript(releasePermitScript),
		extendPermit:  rueidis.NewLuaScript(extendPermitScript),
		listPermits:   rueidis.NewLuaScript(listPermitsScript),
	}
}
