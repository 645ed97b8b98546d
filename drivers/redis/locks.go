package redis

import (
	"context"
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
	k, ttlMs, err := driver.ValidateKeyTTL(key, ttl)
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
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	return d.acquired(ctx, vals, k, lockID, "acquire")
}

// acquired decodes the reply of the acquire script op that tried to take
// key k for id: {1, fence, expiresAtMs} when it took it, {0} on
// contention, {-1, next} when the next fence would pass
// [driver.FenceMax]. A fence past [driver.FenceWarn] is logged.
func (d *Driver) acquired(ctx context.Context, vals []rueidis.RedisMessage, k, id, op string) (driver.AcquireResult, error) {
	code, err := intAt(vals, 0)
	if err != nil {
		return driver.AcquireResult{}, badReply(op)
	}
	switch code {
	case 0:
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	case -1:
		return driver.AcquireResult{}, fenceOverflow(vals, k)
	}
	n, err1 := intAt(vals, 1)
	exp, err2 := intAt(vals, 2)
	if err1 != nil || err2 != nil {
		return driver.AcquireResult{}, badReply(op)
	}
	fence, warn, err := driver.CheckNewFence(n)
	if err != nil { // the script checked FenceMax; this is a format error
		return driver.AcquireResult{}, err
	}
	if warn {
		d.warnFence(ctx, k, fence)
	}
	return driver.AcquireResult{Acquired: true, LockID: id, Fence: fence, ExpiresAtMs: exp}, nil
}

// fenceOverflow is the error of a script that refused to hand out the
// fence in vals[1] (reply {-1, next}): it would pass [driver.FenceMax].
func fenceOverflow(vals []rueidis.RedisMessage, k string) error {
	next, _ := intAt(vals, 1)
	_, _, err := driver.CheckNewFence(next)
	if err == nil {
		err = driver.NewError(driver.Internal, "fence counter overflow")
	}
	if le, ok := err.(*driver.LockError); ok {
		le.Key = k
	}
	return err
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

// Release deletes the lock lockID of key if it is live. Of concurrent or
// repeated releases of one lock exactly one reports OK. Detail is
// "not-found" for an unknown ID (or one whose lock was taken over, or held
// under another key) and "expired" for a lock past its tolerance window.
// With the key the script goes to the lock directly; key "" finds it
// through the lock ID's index.
func (d *Driver) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	an, k, ok, err := d.keyedNames(ctx, key, lockID)
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	if !ok {
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
	c := getCall()
	if k == "" {
		c.set([]string{an.index}, lockID, an.sp)
	} else {
		c.set([]string{an.index, an.lock, an.queue}, lockID, an.sp)
	}
	lr := d.legacyRetry(k, lockID)
	code, err := d.run(ctx, d.s.release, c).AsInt64()
	if err == nil && code == -1 && lr.ok {
		code, err = lr.exec(ctx, d, d.s.release, lockID, lr.sp).AsInt64()
	}
	if err != nil {
		return driver.ReleaseResult{}, mapError(ctx, err, k, lockID)
	}
	return released(code), nil
}

// keyedNames derives the names of the lock lockID of key (valid) for a
// keyed release or extension, then checks the context; with key "" only
// an.index and an.sp are set (a keyless call). ok is false when lockID
// cannot belong to key: it carries another slot (nor has it as its legacy
// slot, see lockIDLegacySlot).
func (d *Driver) keyedNames(ctx context.Context, key, lockID string) (an acquireNames, k string, ok bool, err error) {
	if key == "" {
		an.index, an.sp = d.idKey(lockID)
		an.lockID = lockID
		return an, "", true, driver.CheckContext(ctx)
	}
	k, err = driver.NormalizeKey(key)
	if err != nil {
		return an, "", false, err
	}
	body, err := driver.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return an, "", false, err
	}
	if !lockIDInSlot(lockID, keySlot(body)) {
		return an, k, false, driver.CheckContext(ctx)
	}
	return d.acquireNames(body, lockID), k, true, driver.CheckContext(ctx)
}

// legacyRetry is the second request of a keyless Release, Extend or
// LookupByID of a lock ID that has a legacy slot (see lockIDLegacySlot),
// for when the first, at the slot the ID carries, found nothing: the ID's
// index key and slot prefix at its legacy slot, and when the operation
// started.
type legacyRetry struct {
	idx, sp string
	start   time.Time
	ok      bool
}

// legacyRetry returns the second request of an operation on lockID that
// starts now, ok false when it has none: k is not "" (a keyed call finds
// the lock by its key) or lockID has no legacy slot.
func (d *Driver) legacyRetry(k, lockID string) (r legacyRetry) {
	if k != "" {
		return r
	}
	s, ok := lockIDLegacySlot(lockID)
	if !ok {
		return r
	}
	r.idx, r.sp = d.idKeyAt(s, lockID)
	r.start, r.ok = time.Now(), true
	return r
}

// exec runs script s with KEYS {idx} and args, bounded so that the
// operation as a whole keeps the call bound (WithCallTimeout): with none
// of it left, it fails at once.
func (r legacyRetry) exec(ctx context.Context, d *Driver, s *rueidis.Lua, args ...string) rueidis.RedisResult {
	end := r.start.Add(d.callTimeout)
	if !time.Now().Before(end) {
		return rueidis.NewErrorResult(d.callTimeoutError())
	}
	bctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	res := d.exec(bctx, s, []string{r.idx}, args)
	if res.Error() != nil && bctx.Err() != nil && ctx.Err() == nil {
		return rueidis.NewErrorResult(d.callTimeoutError())
	}
	return res
}

// released is the result of a release script's reply code: 1 released,
// -2 the lock or permit had expired, anything else there was none.
func released(code int64) driver.ReleaseResult {
	switch code {
	case 1:
		return driver.ReleaseResult{OK: true}
	case -2:
		return driver.ReleaseResult{Detail: driver.DetailExpired}
	default:
		return driver.ReleaseResult{Detail: driver.DetailNotFound}
	}
}

// Extend sets the expiry of the live lock lockID of key to server now +
// ttl (a reset, not an addition; it may shorten the lock). It never
// recreates an absent or expired lock. Detail tells "expired" from
// "not-found"; key "" finds the lock through the lock ID's index.
func (d *Driver) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ExtendResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	an, k, ok, err := d.keyedNames(ctx, key, lockID)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	if !ok {
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
	keys := []string{an.index}
	if k != "" {
		keys = append(keys, an.lock)
	}
	args := []string{lockID, formatInt(ttlMs)}
	lr := d.legacyRetry(k, lockID)
	vals, err := d.exec(ctx, d.s.extend, keys, args).ToArray()
	if code, _ := intAt(vals, 0); err == nil && code == -1 && lr.ok {
		vals, err = lr.exec(ctx, d, d.s.extend, args...).ToArray()
	}
	if err != nil {
		return driver.ExtendResult{}, mapError(ctx, err, k, lockID)
	}
	return extended(vals, "extend")
}

// extended decodes the reply of the extend script op: {1, expiresAtMs}
// when it extended the lock or permit, {-2} when that had expired, {0}
// when there was none.
func extended(vals []rueidis.RedisMessage, op string) (driver.ExtendResult, error) {
	code, err := intAt(vals, 0)
	if err != nil {
		return driver.ExtendResult{}, badReply(op)
	}
	switch code {
	case 1:
		exp, err := intAt(vals, 1)
		if err != nil {
			return driver.ExtendResult{}, badReply(op)
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
	n, err := d.exec(ctx, d.s.isLocked, []string{kn.lock()}, []string{cleanup, kn.sp}).AsInt64()
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
	v, err := d.exec(ctx, d.s.lookupKey, []string{kn.lock()}, nil).ToString()
	return d.lookupResult(ctx, v, err, k, "")
}

// LookupByID returns the live lock lockID, or nil.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.CheckID(ctx, lockID); err != nil {
		return nil, err
	}
	idx, _ := d.idKey(lockID)
	lr := d.legacyRetry("", lockID)
	v, err := d.exec(ctx, d.s.lookupID, []string{idx}, []string{lockID}).ToString()
	if rueidis.IsRedisNil(err) && lr.ok {
		v, err = lr.exec(ctx, d, d.s.lookupID, lockID).ToString()
	}
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

func (d *Driver) warnFence(ctx context.Context, key string, f driver.Fence) {
	driver.WarnFence(ctx, d.logger, "redis", key, f)
}

// Script arguments that never change.
var (
	fenceMaxStr = formatInt(int64(driver.FenceMax))
	tolStr      = formatInt(driver.ToleranceMs)
	guardStr    = formatInt(driver.CleanupGuardMs)
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
	t := &ttlString{ms: ms, s: formatInt(ms), px: formatInt(ms + driver.ToleranceMs - 1)}
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
	return driver.NewError(driver.Internal, "redis: unexpected reply from the "+op+" script")
}
