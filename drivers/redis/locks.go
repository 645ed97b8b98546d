package redis

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// unknownOutcomeRelease bounds the best-effort release of a lock whose
// acquire outcome is unknown (the request may have reached the server).
const unknownOutcomeRelease = 5 * time.Second

// Acquire takes key for ttl if no live lock holds it, in one script. A new
// lock gets a fresh lock ID (carrying the key's slot), the key's next fence
// and ExpiresAtMs = server now + ttl. Contention is the result
// {Acquired: false, Reason: "locked"} and writes nothing. If the next fence
// would exceed [driver.FenceMax], Acquire fails with Internal and writes
// nothing.
//
// When the call fails after the request may have reached the server
// (cancellation, timeout, a cut connection), Acquire releases the lock ID
// it minted in the background, on a detached context bounded by 5 s, so an acquisition whose
// result the caller never saw does not block the key until its TTL.
func (d *Driver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	return d.acquire(ctx, key, ttl, "")
}

// acquire is Acquire as the queued waiter waiterID (see watch.go): the
// lock ID is the waiter's ID, and a contended attempt joins the key's
// queue. An empty waiterID mints a fresh lock ID.
func (d *Driver) acquire(ctx context.Context, key string, ttl time.Duration, waiterID string) (driver.AcquireResult, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	body, err := driver.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	an := d.acquireNames(body, waiterID)
	lockID, queued := an.lockID, "1"
	if waiterID == "" {
		queued = ""
	}
	c := getCall()
	c.set([]string{an.lock, an.fence, an.index, an.queue},
		lockID, d.ttlArg(ttlMs), k, an.sp, fenceMarginStr, fenceMaxStr, tolStr, queued, d.waiterLiveMs, d.inbox)
	vals, err := d.run(ctx, d.s.acquire, c).ToArray()
	if err != nil {
		if outcomeUnknown(err) && waiterID == "" { // a waiter's Stop releases its ID
			d.bg.Add(1)
			go d.releaseUnknown(lockID)
		}
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	code, err := intAt(vals, 0)
	if err != nil {
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	switch code {
	case 0:
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	case -1:
		next, _ := intAt(vals, 1)
		_, _, ferr := driver.CheckNewFence(next)
		if ferr == nil {
			ferr = driver.NewError(driver.Internal, "fence counter overflow")
		}
		if le, ok := ferr.(*driver.LockError); ok {
			le.Key = k
		}
		return driver.AcquireResult{}, ferr
	}
	n, err1 := intAt(vals, 1)
	exp, err2 := intAt(vals, 2)
	if err1 != nil || err2 != nil {
		return driver.AcquireResult{}, badReply("acquire")
	}
	fence, warn, ferr := driver.CheckNewFence(n)
	if ferr != nil { // the script checked FenceMax; this is a format error
		return driver.AcquireResult{}, ferr
	}
	if warn {
		d.warnFence(ctx, k, fence)
	}
	return driver.AcquireResult{Acquired: true, LockID: lockID, Fence: fence, ExpiresAtMs: exp}, nil
}

// releaseUnknown releases lockID on a detached, short-lived context, in
// the background ([Driver.Close] waits for it), and retires the ID so that
// the acquisition, should it reach the server only now, does nothing. Its
// result is ignored: the lock either never existed or is released now.
func (d *Driver) releaseUnknown(lockID string) {
	defer d.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), unknownOutcomeRelease)
	defer cancel()
	idx, sp := d.idKey(lockID)
	_ = d.exec(ctx, d.s.release, []string{idx}, []string{lockID, sp, tolStr, fenceMarginStr, fenceMaxStr, goneTTLStr}).Error()
}

// Release deletes the lock identified by lockID if it is live. Of
// concurrent or repeated releases of one lock exactly one reports OK.
// Detail is "not-found" for an unknown ID (or one whose lock was taken
// over) and "expired" for a lock past its tolerance window.
func (d *Driver) Release(ctx context.Context, _, lockID string) (driver.ReleaseResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.ReleaseResult{}, err
	}
	idx, sp := d.idKey(lockID)
	c := getCall()
	c.set([]string{idx}, lockID, sp, tolStr, fenceMarginStr, fenceMaxStr)
	code, err := d.run(ctx, d.s.release, c).AsInt64()
	if err != nil {
		return driver.ReleaseResult{}, mapError(ctx, err, "", lockID)
	}
	switch code {
	case 1:
		return driver.ReleaseResult{OK: true}, nil
	case -2:
		return driver.ReleaseResult{Detail: driver.DetailExpired}, nil
	default:
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
}

// Extend sets the expiry of the live lock lockID to server now + ttl
// (a reset, not an addition; it may shorten the lock). It never recreates
// an absent or expired lock. Detail tells "expired" from "not-found".
func (d *Driver) Extend(ctx context.Context, _, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ExtendResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.ExtendResult{}, err
	}
	idx, _ := d.idKey(lockID)
	vals, err := d.exec(ctx, d.s.extend, []string{idx}, []string{lockID, formatInt(ttlMs), tolStr}).ToArray()
	if err != nil {
		return driver.ExtendResult{}, mapError(ctx, err, "", lockID)
	}
	code, err := intAt(vals, 0)
	if err != nil {
		return driver.ExtendResult{}, badReply("extend")
	}
	switch code {
	case 1:
		exp, err := intAt(vals, 1)
		if err != nil {
			return driver.ExtendResult{}, badReply("extend")
		}
		return driver.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
	case -2:
		return driver.ExtendResult{Detail: driver.DetailExpired}, nil
	default:
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
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
	n, err := d.exec(ctx, d.s.isLocked, []string{kn.lock()}, []string{cleanup, kn.sp, tolStr, guardStr}).AsInt64()
	if err != nil {
		return false, mapError(ctx, err, k, "")
	}
	return n == 1, nil
}

// LookupByKey returns the live lock of key, or nil.
func (d *Driver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, err
	}
	v, err := d.exec(ctx, d.s.lookupKey, []string{kn.lock()}, []string{tolStr}).ToString()
	return d.lookupResult(ctx, v, err, k, "")
}

// LookupByID returns the live lock lockID, or nil.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return nil, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return nil, err
	}
	idx, _ := d.idKey(lockID)
	v, err := d.exec(ctx, d.s.lookupID, []string{idx}, []string{lockID, tolStr}).ToString()
	return d.lookupResult(ctx, v, err, "", lockID)
}

func (d *Driver) lookupResult(ctx context.Context, v string, err error, key, lockID string) (*driver.LockInfo, error) {
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
func parseRecord(v string) (*driver.LockInfo, bool) {
	if len(v) < driver.LockIDLen+7 {
		return nil, false
	}
	id, rest := v[:driver.LockIDLen], v[driver.LockIDLen:]
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
	return &driver.LockInfo{
		Key:          rest,
		LockID:       id,
		Fence:        driver.Fence(f[2]),
		ExpiresAtMs:  f[0],
		AcquiredAtMs: f[1],
	}, true
}

// warnFence logs that key's fence counter passed FenceWarn, with the key's
// hash only.
func (d *Driver) warnFence(ctx context.Context, key string, f driver.Fence) {
	l := d.logger
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(ctx, slog.LevelWarn, "syncguard: fence counter approaching its limit",
		slog.String("backend", "redis"),
		slog.String("keyHash", driver.HashKey(key)),
		slog.String("fence", f.String()),
		slog.String("fenceMax", driver.FenceMax.String()),
	)
}

// Script arguments that never change.
var (
	fenceMaxStr = formatInt(int64(driver.FenceMax))
	tolStr      = formatInt(driver.ToleranceMs)
	guardStr    = formatInt(driver.CleanupGuardMs)
)

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }

// ttlString caches the decimal form of the last TTL used, which is
// nearly always the same.
type ttlString struct {
	ms int64
	s  string
}

func (d *Driver) ttlArg(ms int64) string {
	if t := d.ttlStr.Load(); t != nil && t.ms == ms {
		return t.s
	}
	s := formatInt(ms)
	d.ttlStr.Store(&ttlString{ms: ms, s: s})
	return s
}

// intAt returns vals[i] as an integer.
func intAt(vals []rueidis.RedisMessage, i int) (int64, error) {
	if i >= len(vals) {
		return 0, badReply("script")
	}
	return vals[i].AsInt64()
}

func badReply(op string) error {
	return driver.NewError(driver.Internal, "redis: unexpected reply from the "+op+" script")
}
