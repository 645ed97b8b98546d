package redis

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/syncguard/syncguard/driver"
)

var _ driver.PermitStore = (*Driver)(nil)

// Permits (docs/contract.md#permits)
//
// The permits of a key, their fence counter and a summary of the permits
// are one hash, so that a Cluster keeps them in one slot and each
// operation is one script on one key:
//
//	<sp>sem:<body>   f <last permit fence>
//	                 c <number of permits stored>
//	                 m <a lower bound of the earliest expiry among them>
//	                 [l <the smallest limit among them>]
//	                 [x <how many of them have a limit above l>]
//	                 <permitID> <expiresAtMs>|<fence>|<limit>|<acquiredAtMs>   (one field per permit)
//
// The "sem:" segment keeps permits apart from the lock hash (lock:) and
// the record (rec:) of the same key, and f is not the lock counter n.
// Permit IDs are 22-character lock IDs, so no ID is one of the one-letter
// fields. limit is the limit the permit was acquired with.
//
// The summary makes the common acquisition O(1): when m > now − tolerance
// every stored permit is live, so c is the live count and l the smallest
// live limit, and AcquirePermit reads five fields (HMGET) instead of the
// whole hash. Only when m has passed (a permit may have expired), or l is
// unknown, or the hash has no summary, does it read the whole hash
// (HGETALL): it counts the live permits and their smallest limit as the
// contract says, and, if it grants, deletes the dead permits and rewrites
// the summary exactly. Every script keeps the summary true of the stored
// permits: an acquisition adds its permit to c, m, l and x; a release or
// an expired permit's deletion takes it out of c and x, and deletes l and
// x when the last permit with the smallest limit goes while others remain
// (l is then unknown until the next grant reads the hash); an extension
// lowers m when it shortens a permit below it. Outside a full read m is
// never raised, so it stays a lower bound when the earliest permit goes;
// it passes at most the longest TTL in use plus the tolerance after it was
// written, and the next acquisition then reads the hash once and sets it
// exactly. A contended acquisition writes nothing, not even the summary.
//
// Storage follows the live permits: a granting AcquirePermit that reads
// the hash deletes the permits that are no longer live (so the hash never
// holds more than [driver.MaxPermits] permits: the fast path adds a permit
// only while every stored one is live and fewer than the limit) and sets
// the hash's expiry (PEXPIREAT) to max(latest live expiry + tolerance − 1
// ms, keepAt(f)): it outlives every live permit and keeps the counter as
// long as [driver.FenceKeepMs] asks (luaKeep, the lock rule). The fast
// path and ExtendPermit only ever raise that expiry (GT), to cover their
// permit and the counter, so it is at most the later of the counter's
// keep time and the latest expiry any permit has had since the last full
// read, plus the tolerance. A release or an extension that leaves the
// hash without permits deletes the summary and moves the expiry to
// keepAt(f), which deletes the hash at once when the fence floor has
// passed f by the margin.

// luaPermitDrop defines drop(id, h, pl): it deletes the permit id, whose
// limit is pl, and takes it out of the summary; h is the reply of
// HMGET(id, 'c', 'l', 'x', 'f'). When no permit is left, the summary goes
// and the hash expires when its counter may go (luaKeep).
const luaPermitDrop = `
local function drop(id, h, pl)
  local c = tonumber(h[2])
  if c then c = c - 1 end
  if (not c) or c <= 0 then
    redis.call('HDEL', KEYS[1], id, 'c', 'm', 'l', 'x')
    if redis.call('HLEN', KEYS[1]) <= 1 then
      redis.call('PEXPIREAT', KEYS[1], string.format('%d', keepAt(tonumber(h[5]) or 0)))
    end
    return
  end
  redis.call('HDEL', KEYS[1], id)
  local l, x = tonumber(h[3]), tonumber(h[4]) or 0
  pl = tonumber(pl)
  if l and pl then
    if pl == l and c > x then
      redis.call('HSET', KEYS[1], 'c', string.format('%d', c))
      return
    elseif pl > l and x > 0 then
      redis.call('HSET', KEYS[1], 'c', string.format('%d', c), 'x', string.format('%d', x - 1))
      return
    end
  end
  redis.call('HDEL', KEYS[1], 'l', 'x')
  redis.call('HSET', KEYS[1], 'c', string.format('%d', c))
end
`

// acquirePermitScript: KEYS sem; ARGV permitID, limit, ttl (ms).
// Returns {0} when full (nothing written), {-1, next} on fence overflow
// (nothing written), {1, fence, exp} when granted.
var acquirePermitScript = luaNow + luaKeep + luaFloor + `
local lim = tonumber(ARGV[2])
local exp = now + tonumber(ARGV[3])
local es = string.format('%d', exp)
local h = redis.call('HMGET', KEYS[1], 'f', 'c', 'm', 'l', 'x')
local c, m, l = tonumber(h[2]), tonumber(h[3]), tonumber(h[4])
if c and m and l and m > now - ` + tolStr + ` then
  if c >= math.min(lim, l) then return {0} end
  local n = math.max((tonumber(h[1]) or 0) + 1, fl)
  if n > ` + fenceMaxStr + ` then return {-1, n} end
  local fs = string.format('%d', n)
  local v = es .. '|' .. fs .. '|' .. ARGV[2] .. string.format('|%d', now)
  local cs = string.format('%d', c + 1)
  if exp >= m and lim == l then
    redis.call('HSET', KEYS[1], 'f', fs, ARGV[1], v, 'c', cs)
  else
    local w = {'HSET', KEYS[1], 'f', fs, ARGV[1], v, 'c', cs}
    if exp < m then w[#w + 1] = 'm'; w[#w + 1] = es end
    if lim < l then
      w[#w + 1] = 'l'; w[#w + 1] = ARGV[2]; w[#w + 1] = 'x'; w[#w + 1] = string.format('%d', c)
    elseif lim > l then
      w[#w + 1] = 'x'; w[#w + 1] = string.format('%d', (tonumber(h[5]) or 0) + 1)
    end
    redis.call(unpack(w))
  end
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.max(exp + ` + tolM1Str + `, keepAt(n))), 'GT')
  return {1, n, exp}
end
local all = {}
if h[1] or c then all = redis.call('HGETALL', KEYS[1]) end
local n0, live, mx, me, ml, dead, lims, hasx = 0, 0, exp, exp, lim, {}, {}, false
for i = 1, #all, 2 do
  local k = all[i]
  if k == 'f' then
    n0 = tonumber(all[i + 1]) or 0
  elseif k == 'x' then
    hasx = true
  elseif #k > 1 then
    local e, pl = string.match(all[i + 1], '^(%d+)|%d+|(%d+)|')
    e = tonumber(e)
    if e and e > now - ` + tolStr + ` then
      live = live + 1
      pl = tonumber(pl)
      lims[live] = pl
      if pl < ml then ml = pl end
      if e > mx then mx = e end
      if e < me then me = e end
    else
      dead[#dead + 1] = k
    end
  end
end
if live >= ml then return {0} end
local n = math.max(n0 + 1, fl)
if n > ` + fenceMaxStr + ` then return {-1, n} end
local x = 0
if lim > ml then x = 1 end
for i = 1, live do
  if lims[i] > ml then x = x + 1 end
end
if x == 0 and hasx then dead[#dead + 1] = 'x' end
for i = 1, #dead, 500 do
  redis.call('HDEL', KEYS[1], unpack(dead, i, math.min(i + 499, #dead)))
end
local fs = string.format('%d', n)
local w = {'HSET', KEYS[1], 'f', fs, ARGV[1], es .. '|' .. fs .. '|' .. ARGV[2] .. string.format('|%d', now),
  'c', string.format('%d', live + 1), 'm', string.format('%d', me), 'l', string.format('%d', ml)}
if x > 0 then w[#w + 1] = 'x'; w[#w + 1] = string.format('%d', x) end
redis.call(unpack(w))
redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.max(mx + ` + tolM1Str + `, keepAt(n))))
return {1, n, exp}
`

// releasePermitScript: KEYS sem; ARGV permitID, release channel. Returns
// 1 released, -1 not found, -2 expired (the permit is deleted either
// way). Releasing a live permit wakes the key's permit watchers
// (SPUBLISH; see WatchPermits).
var releasePermitScript = luaKeep + luaPermitDrop + `
local h = redis.call('HMGET', KEYS[1], ARGV[1], 'c', 'l', 'x', 'f')
if not h[1] then return -1 end
` + luaNow + `
local e, pl = string.match(h[1], '^(%d+)|%d+|(%d+)|')
drop(ARGV[1], h, pl)
e = tonumber(e)
if e and e > now - ` + tolStr + ` then
  redis.pcall('SPUBLISH', ARGV[2], '')
  return 1
end
return -2
`

// extendPermitScript: KEYS sem; ARGV permitID, ttl (ms). Returns {1, exp}
// extended, {-1} not found, {-2} expired (the permit is deleted, never
// recreated).
var extendPermitScript = luaKeep + luaPermitDrop + `
local h = redis.call('HMGET', KEYS[1], ARGV[1], 'c', 'l', 'x', 'f', 'm')
if not h[1] then return {-1} end
` + luaNow + `
local e, rest, pl = string.match(h[1], '^(%d+)(|%d+|(%d+)|.*)$')
e = tonumber(e)
if not (e and e > now - ` + tolStr + `) then
  drop(ARGV[1], h, pl)
  return {-2}
end
local exp = now + tonumber(ARGV[2])
local es = string.format('%d', exp)
local m = tonumber(h[6])
if m and exp < m then
  redis.call('HSET', KEYS[1], ARGV[1], es .. rest, 'm', es)
else
  redis.call('HSET', KEYS[1], ARGV[1], es .. rest)
end
redis.call('PEXPIREAT', KEYS[1], string.format('%d', exp + ` + tolM1Str + `), 'GT')
return {1, exp}
`

// listPermitsScript: KEYS sem. Returns {now, field, value, …}: the server
// time (ms) and the hash; the caller keeps the live permits. Read-only.
const listPermitsScript = luaNow + `
local r = redis.call('HGETALL', KEYS[1])
table.insert(r, 1, now)
return r
`

// AcquirePermit takes one permit of key for ttl, in one script (one
// EVALSHA) on the server clock, if fewer permits are live than limit and
// than the limit of each live permit. The permit gets a fresh ID, the fence
// max(counter + 1, FenceFloor(server now)) of the key's permit counter
// (not its lock counter) and ExpiresAtMs = server now + ttl. A full key is
// the result {Acquired: false, Reason: "locked"} and writes nothing; a
// fence past [driver.FenceMax] fails with Internal and writes nothing.
//
// When the call fails after the request may have reached the server, the
// permit ID is released in the background (as [Driver.Acquire] does, but
// without retiring the ID: a request that reaches Redis only after that
// release holds its permit until its TTL).
func (d *Driver) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	// As driver.CheckPermitKeyTTL, but the storage name is checked before
	// the context, like every operation of this driver.
	if err := driver.CheckPermits(limit); err != nil {
		return driver.AcquireResult{}, err
	}
	k, ttlMs, err := driver.ValidateKeyTTL(key, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	kn, err := d.checkedNames(ctx, k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	id := driver.NewLockID()
	sem := kn.sem()
	vals, err := d.exec(ctx, d.s.acquirePermit, []string{sem}, []string{id, strconv.Itoa(limit), formatInt(ttlMs)}).ToArray()
	if err != nil {
		if outcomeUnknown(err) {
			d.bg.Add(1)
			go d.releasePermitUnknown(kn, id)
		}
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	return d.acquired(ctx, vals, k, id, "acquire-permit")
}

// releasePermitUnknown releases permit id of the hash sem on a detached
// context bounded by unknownOutcomeRelease, in the background
// ([Driver.Close] waits for it). Its result is ignored.
func (d *Driver) releasePermitUnknown(kn keyNames, id string) {
	defer d.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), unknownOutcomeRelease)
	defer cancel()
	_ = d.exec(ctx, d.s.releasePermit, []string{kn.sem()}, []string{id, kn.semRel()}).Error()
}

// permitKey is the prologue of ReleasePermit and ExtendPermit: a valid
// permit ID, the normalised key and its names, then the context.
func (d *Driver) permitKey(ctx context.Context, key, permitID string) (string, keyNames, error) {
	if err := driver.ValidateLockID(permitID); err != nil {
		return "", keyNames{}, err
	}
	return d.keyFor(ctx, key)
}

// ReleasePermit deletes the live permit permitID of key, in one script. Of
// concurrent or repeated releases exactly one reports OK; Detail is
// "expired" for a permit past its tolerance window that was still stored
// and "not-found" otherwise.
func (d *Driver) ReleasePermit(ctx context.Context, key, permitID string) (driver.ReleaseResult, error) {
	k, kn, err := d.permitKey(ctx, key, permitID)
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	code, err := d.exec(ctx, d.s.releasePermit, []string{kn.sem()}, []string{permitID, kn.semRel()}).AsInt64()
	if err != nil {
		return driver.ReleaseResult{}, mapError(ctx, err, k, permitID)
	}
	return released(code), nil
}

// ExtendPermit sets the expiry of the live permit permitID of key to server
// now + ttl (a reset; it may shorten the permit), in one script. It never
// recreates an absent or expired permit; Detail tells "expired" from
// "not-found" as ReleasePermit does.
func (d *Driver) ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (driver.ExtendResult, error) {
	if err := driver.ValidateLockID(permitID); err != nil {
		return driver.ExtendResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	k, kn, err := d.permitKey(ctx, key, permitID)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	vals, err := d.exec(ctx, d.s.extendPermit, []string{kn.sem()}, []string{permitID, formatInt(ttlMs)}).ToArray()
	if err != nil {
		return driver.ExtendResult{}, mapError(ctx, err, k, permitID)
	}
	return extended(vals, "extend-permit")
}

// Permits returns the live permits of key in fence order, judged by the
// server clock, in one read-only script. It is diagnostic.
func (d *Driver) Permits(ctx context.Context, key string) ([]driver.LockInfo, error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, err
	}
	vals, err := d.exec(ctx, d.s.listPermits, []string{kn.sem()}, nil).ToArray()
	if err != nil {
		return nil, mapError(ctx, err, k, "")
	}
	now, err := intAt(vals, 0)
	if err != nil || len(vals)%2 != 1 {
		return nil, badReply("permits")
	}
	var out []driver.LockInfo
	for i := 1; i < len(vals); i += 2 {
		id, err1 := vals[i].ToString()
		v, err2 := vals[i+1].ToString()
		if err1 != nil || err2 != nil {
			return nil, badReply("permits")
		}
		if len(id) == 1 { // f and the summary (c, m, l, x)
			continue
		}
		p, ok := parsePermit(v)
		if !ok {
			return nil, badReply("permits")
		}
		if driver.IsLive(p.ExpiresAtMs, now) {
			p.Key, p.LockID = k, id
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b driver.LockInfo) int { return cmp.Compare(a.Fence, b.Fence) })
	return out, nil
}

// parsePermit decodes a permit's value, <expiresAtMs>|<fence>|<limit>|<acquiredAtMs>.
func parsePermit(v string) (driver.LockInfo, bool) {
	var f [4]int64
	for i := range f {
		s := v
		if i < len(f)-1 {
			var ok bool
			if s, v, ok = strings.Cut(v, "|"); !ok {
				return driver.LockInfo{}, false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return driver.LockInfo{}, false
		}
		f[i] = n
	}
	if f[1] < 1 || driver.Fence(f[1]) > driver.FenceMax {
		return driver.LockInfo{}, false
	}
	return driver.LockInfo{Fence: driver.Fence(f[1]), ExpiresAtMs: f[0], AcquiredAtMs: f[3]}, true
}
