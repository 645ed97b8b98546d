package redis

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
)

// unknownOutcomeRelease bounds the best-effort release of a lock whose
// acquire outcome is unknown (the request may have reached the server).
const unknownOutcomeRelease = 5 * time.Second

// Acquire takes key for ttl if no live lock holds it, in one script. A new
// lock gets a fresh lock ID (carrying the key's slot), the key's next fence
// and ExpiresAtMs = server now + ttl. Contention is the result
// {Acquired: false, Reason: "locked"} and writes nothing. If the next fence
// would exceed [syncguard.FenceMax], Acquire fails with Internal and writes
// nothing.
//
// When the call fails after the request may have reached the server
// (cancellation, timeout, a cut connection), Acquire releases the lock ID
// it minted in the background, on a detached context bounded by 5 s, so an acquisition whose
// result the caller never saw does not block the key until its TTL.
func (d *Driver) Acquire(ctx context.Context, key string, ttl time.Duration) (syncguard.AcquireResult, error) {
	return d.acquire(ctx, key, ttl, "")
}

// acquire is Acquire as the queued waiter waiterID (see watch.go): the
// lock ID is the waiter's ID, and a contended attempt joins the key's
// queue. An empty waiterID mints a fresh lock ID.
func (d *Driver) acquire(ctx context.Context, key string, ttl time.Duration, waiterID string) (syncguard.AcquireResult, error) {
	k, err := syncguard.NormalizeKey(key)
	if err != nil {
		return syncguard.AcquireResult{}, err
	}
	ttlMs, err := syncguard.TTLMillis(ttl)
	if err != nil {
		return syncguard.AcquireResult{}, err
	}
	body, err := syncguard.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return syncguard.AcquireResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.AcquireResult{}, err
	}
	an := d.acquireNames(body, waiterID)
	lockID := an.lockID
	c := getCall()
	ts := d.ttlArgs(ttlMs)
	if waiterID == "" {
		c.set2(an.lock, an.index, lockID, ts.s, k, ts.px)
	} else {
		c.set([]string{an.lock, an.index, an.queue}, lockID, ts.s, k, ts.px, d.inbox, d.waiterLiveMs)
	}
	vals, err := d.run(ctx, d.s.acquire, c).ToArray()
	if err != nil {
		if outcomeUnknown(err) && waiterID == "" { // a waiter's Stop releases its ID
			d.bg.Add(1)
			go d.releaseUnknown(an)
		}
		return syncguard.AcquireResult{}, mapError(ctx, err, k, "")
	}
	code, err := intAt(vals, 0)
	if err != nil {
		return syncguard.AcquireResult{}, mapError(ctx, err, k, "")
	}
	switch code {
	case 0:
		return syncguard.AcquireResult{Reason: syncguard.ReasonLocked}, nil
	case -1:
		next, _ := intAt(vals, 1)
		_, _, ferr := syncguard.CheckNewFence(next)
		if ferr == nil {
			ferr = syncguard.NewError(syncguard.Internal, "Fence counter overflow")
		}
		if le, ok := ferr.(*syncguard.LockError); ok {
			le.Key = k
		}
		return syncguard.AcquireResult{}, ferr
	}
	n, err1 := intAt(vals, 1)
	exp, err2 := intAt(vals, 2)
	if err1 != nil || err2 != nil {
		return syncguard.AcquireResult{}, badReply("acquire")
	}
	fence, warn, ferr := syncguard.CheckNewFence(n)
	if ferr != nil { // the script checked FenceMax; this is a format error
		return syncguard.AcquireResult{}, ferr
	}
	if warn {
		d.warnFence(ctx, k, fence)
	}
	return syncguard.AcquireResult{Acquired: true, LockID: lockID, Fence: fence, ExpiresAtMs: exp}, nil
}

// releaseUnknown releases the lock ID of an (on a detached, short-lived
// context, in the background ([Driver.Close] waits for it), and retires
// the ID so that the acquisition, should it reach the server only now,
// does nothing. Its result is ignored: the lock either never existed or
// is released now.
func (d *Driver) releaseUnknown(an acquireNames) {
	defer d.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), unknownOutcomeRelease)
	defer cancel()
	_ = d.exec(ctx, d.s.release, []string{an.index, an.lock, an.queue}, []string{an.lockID, an.sp, goneTTLStr}).Error()
}

// Release deletes the lock identified by lockID if it is live. Of
// concurrent or repeated releases of one lock exactly one reports OK.
// Detail is "not-found" for an unknown ID (or one whose lock was taken
// over) and "expired" for a lock past its tolerance window. It finds the
// lock through the lock ID's index; [Driver.ReleaseKeyed] skips that
// lookup when the key is known.
func (d *Driver) Release(ctx context.Context, lockID string) (syncguard.ReleaseResult, error) {
	return d.ReleaseKeyed(ctx, "", lockID)
}

// ReleaseKeyed is Release for the lock lockID of key: the script goes to
// the lock directly instead of through the lock ID's index. A lock ID
// held under another key is not released (not-found). key "" is a keyless
// release, the same as [Driver.Release].
//
// Temporary (issue 21): the driver contract's Release will take the key;
// until then [syncguard.Lease] calls this method through an optional
// interface.
func (d *Driver) ReleaseKeyed(ctx context.Context, key, lockID string) (syncguard.ReleaseResult, error) {
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return syncguard.ReleaseResult{}, err
	}
	an, k, ok, err := d.keyedNames(key, lockID)
	if err != nil {
		return syncguard.ReleaseResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.ReleaseResult{}, err
	}
	if !ok {
		return syncguard.ReleaseResult{Detail: syncguard.DetailNotFound}, nil
	}
	c := getCall()
	if k == "" {
		c.set([]string{an.index}, lockID, an.sp)
	} else {
		c.set([]string{an.index, an.lock, an.queue}, lockID, an.sp)
	}
	code, err := d.run(ctx, d.s.release, c).AsInt64()
	if err != nil {
		return syncguard.ReleaseResult{}, mapError(ctx, err, k, lockID)
	}
	switch code {
	case 1:
		return syncguard.ReleaseResult{OK: true}, nil
	case -2:
		return syncguard.ReleaseResult{Detail: syncguard.DetailExpired}, nil
	default:
		return syncguard.ReleaseResult{Detail: syncguard.DetailNotFound}, nil
	}
}

// keyedNames derives the names of the lock lockID of key (valid) for a
// keyed release or extension; with key "" only an.index and an.sp are
// set (a keyless call). ok is false when lockID cannot belong to key: it
// carries another slot.
func (d *Driver) keyedNames(key, lockID string) (an acquireNames, k string, ok bool, err error) {
	if key == "" {
		an.index, an.sp = d.idKey(lockID)
		an.lockID = lockID
		return an, "", true, nil
	}
	k, err = syncguard.NormalizeKey(key)
	if err != nil {
		return an, "", false, err
	}
	body, err := syncguard.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return an, "", false, err
	}
	if keySlot(body) != lockIDSlot(lockID) {
		return an, k, false, nil
	}
	return d.acquireNames(body, lockID), k, true, nil
}

// Extend sets the expiry of the live lock lockID to server now + ttl
// (a reset, not an addition; it may shorten the lock). It never recreates
// an absent or expired lock. Detail tells "expired" from "not-found".
func (d *Driver) Extend(ctx context.Context, lockID string, ttl time.Duration) (syncguard.ExtendResult, error) {
	return d.ExtendKeyed(ctx, "", lockID, ttl)
}

// ExtendKeyed is Extend for the lock lockID of key, without the lookup of
// the lock ID's index; key "" is the same as [Driver.Extend]. A lock ID
// held under another key is not extended (not-found).
//
// Temporary (issue 21), like [Driver.ReleaseKeyed].
func (d *Driver) ExtendKeyed(ctx context.Context, key, lockID string, ttl time.Duration) (syncguard.ExtendResult, error) {
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return syncguard.ExtendResult{}, err
	}
	ttlMs, err := syncguard.TTLMillis(ttl)
	if err != nil {
		return syncguard.ExtendResult{}, err
	}
	an, k, ok, err := d.keyedNames(key, lockID)
	if err != nil {
		return syncguard.ExtendResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.ExtendResult{}, err
	}
	if !ok {
		return syncguard.ExtendResult{Detail: syncguard.DetailNotFound}, nil
	}
	keys := []string{an.index}
	if k != "" {
		keys = append(keys, an.lock)
	}
	vals, err := d.exec(ctx, d.s.extend, keys, []string{lockID, formatInt(ttlMs)}).ToArray()
	if err != nil {
		return syncguard.ExtendResult{}, mapError(ctx, err, k, lockID)
	}
	code, err := intAt(vals, 0)
	if err != nil {
		return syncguard.ExtendResult{}, badReply("extend")
	}
	switch code {
	case 1:
		exp, err := intAt(vals, 1)
		if err != nil {
			return syncguard.ExtendResult{}, badReply("extend")
		}
		return syncguard.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
	case -2:
		return syncguard.ExtendResult{Detail: syncguard.DetailExpired}, nil
	default:
		return syncguard.ExtendResult{Detail: syncguard.DetailNotFound}, nil
	}
}

// IsLocked reports whether a live lock holds key. It is read-only unless
// the driver was created [WithCleanupInIsLocked].
func (d *Driver) IsLocked(ctx context.Context, key string) (bool, error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return false, err
	}
	cleanup := "0"
	if d.cleanup {
		cleanup = "1"
	}
	n, err := d.exec(ctx, d.s.isLocked, []string{kn.lock()}, []string{cleanup, kn.sp}).AsInt64()
	if err != nil {
		return false, mapError(ctx, err, k, "")
	}
	return n == 1, nil
}

// LookupByKey returns sanitized information about the live lock on key, or
// nil if there is none.
func (d *Driver) LookupByKey(ctx context.Context, key string) (*syncguard.LockInfo, error) {
	r, err := d.LookupRawByKey(ctx, key)
	if r == nil || err != nil {
		return nil, err
	}
	return &r.LockInfo, nil
}

// LookupByID returns sanitized information about the live lock lockID, or
// nil if there is none.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*syncguard.LockInfo, error) {
	r, err := d.LookupRawByID(ctx, lockID)
	if r == nil || err != nil {
		return nil, err
	}
	return &r.LockInfo, nil
}

// LookupRawByKey is LookupByKey with the raw normalised key and lock ID.
// Prefer [syncguard.GetByKeyRaw], which documents the exposure.
func (d *Driver) LookupRawByKey(ctx context.Context, key string) (*syncguard.RawLockInfo, error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, err
	}
	v, err := d.exec(ctx, d.s.lookupKey, []string{kn.lock()}, nil).ToString()
	return d.lookupResult(ctx, v, err, k, "")
}

// LookupRawByID is LookupByID with the raw normalised key and lock ID.
// Prefer [syncguard.GetByIDRaw], which documents the exposure.
func (d *Driver) LookupRawByID(ctx context.Context, lockID string) (*syncguard.RawLockInfo, error) {
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return nil, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return nil, err
	}
	idx, _ := d.idKey(lockID)
	v, err := d.exec(ctx, d.s.lookupID, []string{idx}, []string{lockID}).ToString()
	return d.lookupResult(ctx, v, err, "", lockID)
}

func (d *Driver) lookupResult(ctx context.Context, v string, err error, key, lockID string) (*syncguard.RawLockInfo, error) {
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(ctx, err, key, lockID)
	}
	r, ok := parseRecord(v)
	if !ok {
		return nil, badReply("lookup")
	}
	return r, nil
}

// parseRecord decodes a lock record.
func parseRecord(v string) (*syncguard.RawLockInfo, bool) {
	if len(v) < syncguard.LockIDLen+7 {
		return nil, false
	}
	id, rest := v[:syncguard.LockIDLen], v[syncguard.LockIDLen:]
	var f [3]int64
	for i := range f {
		j := strings.IndexByte(rest, '|')
		if j < 0 {
			return nil, false
		}
		n, err := strconv.ParseInt(rest[:j], 10, 64)
		if err != nil {
			return nil, false
		}
		f[i], rest = n, rest[j+1:]
	}
	if f[2] < 1 || f[2] > 999_999_999_999_999 {
		return nil, false
	}
	return &syncguard.RawLockInfo{
		LockInfo: syncguard.LockInfo{
			KeyHash:      syncguard.HashKey(rest),
			LockIDHash:   syncguard.HashKey(id),
			Fence:        syncguard.Fence(f[2]),
			ExpiresAtMs:  f[0],
			AcquiredAtMs: f[1],
		},
		Key:    rest,
		LockID: id,
	}, true
}

// warnFence logs that key's fence counter passed FenceWarn, with the key's
// hash only.
func (d *Driver) warnFence(ctx context.Context, key string, f syncguard.Fence) {
	l := d.logger
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(ctx, slog.LevelWarn, "syncguard: fence counter approaching its limit",
		slog.String("backend", "redis"),
		slog.String("keyHash", syncguard.HashKey(key)),
		slog.String("fence", f.String()),
		slog.String("fenceMax", syncguard.FenceMax.String()),
	)
}

// Script arguments that never change.
var (
	fenceMaxStr = formatInt(int64(syncguard.FenceMax))
	tolStr      = formatInt(syncguard.ToleranceMs)
	guardStr    = formatInt(syncguard.CleanupGuardMs)
)

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

// ttlString caches the decimal forms of the last TTL used, which is
// nearly always the same: the TTL and TTL + tolerance − 1 (the PX of a new
// lock's index and hash), both in ms.
type ttlString struct {
	ms    int64
	s, px string
}

func (d *Driver) ttlArgs(ms int64) *ttlString {
	if t := d.ttlStr.Load(); t != nil && t.ms == ms {
		return t
	}
	t := &ttlString{ms: ms, s: formatInt(ms), px: formatInt(ms + syncguard.ToleranceMs - 1)}
	d.ttlStr.Store(t)
	return t
}

// intAt returns vals[i] as an integer.
func intAt(vals []rueidis.RedisMessage, i int) (int64, error) {
	if i >= len(vals) {
		return 0, badReply("script")
	}
	return vals[i].AsInt64()
}

func badReply(op string) error {
	return syncguard.NewError(syncguard.Internal, "redis: unexpected reply from the "+op+" script")
}
