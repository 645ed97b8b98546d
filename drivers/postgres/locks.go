package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/syncguard/syncguard/driver"
)

// baseKey returns the storage key of a normalised key (docs/contract.md#keys), in
// its stored form (dbText).
func baseKey(k string) (string, error) {
	b, err := driver.StorageKey("", k, storageLimit, storageReserve)
	return dbText(b), err
}

// fenceKey returns the fence counter key of a base key, both in their
// stored form (dbText).
func fenceKey(base string) (string, error) {
	f, err := driver.StorageKey("", "fence:"+fromDBText(base), storageLimit, storageReserve)
	return dbText(f), err
}

// lockKeys normalises key and derives its base and fence keys.
func lockKeys(key string) (k, base, fk string, err error) {
	if k, err = driver.NormalizeKey(key); err != nil {
		return "", "", "", err
	}
	if base, err = baseKey(k); err != nil {
		return "", "", "", err
	}
	if fk, err = fenceKey(base); err != nil {
		return "", "", "", err
	}
	return k, base, fk, nil
}

// compensateTimeout bounds the best-effort release after a cancelled
// Acquire.
const compensateTimeout = 5 * time.Second

// Acquire takes key for ttl if no live lock holds it, in one round trip (a
// pipelined batch of the key's advisory transaction lock and one
// statement). Contention is the result {Acquired: false, Reason: "locked"}
// and writes nothing. A fence above [driver.FenceMax] fails with
// Internal and writes nothing. If ctx ends, or the connection fails, while
// the request may be in flight, the outcome is unknown to the caller, so
// Acquire releases its lock ID in the background (best effort, 5s) before
// returning the error.
func (d *Driver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, fk, err := lockKeys(key)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	lockID := driver.NewLockID()

	var (
		free        bool
		next        int64
		exp, fenceW *int64
	)
	b := &pgx.Batch{}
	b.Queue(d.q.advisory, base)
	b.Queue(d.q.acquire, base, fk, lockID, dbText(k), ttlMs, int64(driver.FenceMax)).QueryRow(func(row pgx.Row) error {
		return row.Scan(&free, &next, &exp, &fenceW, nil) // the server's now: unused here
	})
	if err := d.sendAcquire(ctx, b, k, func() { d.compensate(base, lockID) }); err != nil {
		return driver.AcquireResult{}, err
	}
	return d.acquired(ctx, k, lockID, free, next, exp, fenceW)
}

// sendAcquire sends the batch b of an acquisition on the normalised key
// k. When it fails and the acquisition may have committed
// ([outcomeUnknown]), it calls compensate (which releases in the
// background) before it returns the error.
func (d *Driver) sendAcquire(ctx context.Context, b *pgx.Batch, k string, compensate func()) error {
	err := d.pool.SendBatch(ctx, b).Close()
	if err == nil {
		return nil
	}
	if outcomeUnknown(ctx, err) {
		compensate()
	}
	return withKey(mapError(ctx, err), k)
}

// acquired interprets the results of the acquire or acquirePermit
// statement for lockID (a lock or permit ID) on the normalised key k: the
// key was free, the next fence, and the expiry and fence written (nil
// when nothing was).
func (d *Driver) acquired(ctx context.Context, k, lockID string, free bool, next int64, exp, fenceW *int64) (driver.AcquireResult, error) {
	if !free {
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	if next > int64(driver.FenceMax) {
		_, _, ferr := driver.CheckNewFence(next)
		return driver.AcquireResult{}, withKey(ferr, k)
	}
	if exp == nil || fenceW == nil {
		// A live row appeared despite the advisory lock (a writer that
		// does not take it): contention, nothing written.
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	fence, warn, ferr := driver.CheckNewFence(*fenceW)
	if ferr != nil { // unreachable: checked in the statement
		return driver.AcquireResult{}, withKey(ferr, k)
	}
	if warn {
		d.warnFence(ctx, k, fence)
	}
	return driver.AcquireResult{Acquired: true, LockID: lockID, Fence: fence, ExpiresAtMs: *exp}, nil
}

// outcomeUnknown reports whether an Acquire that failed with err may still
// have committed: its context ended, or the connection failed after the
// request may have been sent (anything but an error that proves it unsent,
// see safeToRetry). A server error response means the transaction was
// rolled back.
func outcomeUnknown(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) && !safeToRetry(err)
}

// compensate undoes an Acquire of base whose outcome is unknown, in the
// background: it gives lockID up (see giveUp), so that the acquisition,
// whether it committed already or is still to run, ends released.
func (d *Driver) compensate(base, lockID string) {
	d.goBackground(compensateTimeout, func(ctx context.Context) { d.giveUp(ctx, base, lockID) })
}

func withKey(err error, key string) error {
	var le *driver.LockError
	if errors.As(err, &le) && le.Key == "" {
		le.Key = key
	}
	return err
}

func withLockID(err error, id string) error {
	var le *driver.LockError
	if errors.As(err, &le) && le.LockID == "" {
		le.LockID = id
	}
	return err
}

// Release deletes the live lock identified by lockID in one statement that
// locks the row, reads the server clock and deletes it (with a NOTIFY to
// watchers of its key). When Guard waiters are queued for the key (see
// [Driver.WatchHandoff]), that statement leaves the lock alone and a
// second one hands the key over to the oldest waiter. Of concurrent or
// repeated releases exactly one reports OK. Detail is "not-found" for an
// unknown ID and "expired" for a lock past its tolerance window (its row is
// kept for cleanup).
//
// A plain release commits asynchronously (synchronous_commit off for its
// transaction only; a hand-over commits like Acquire): if the server
// crashes within a fraction of a second after an OK, the release may be lost and the lock then stays in place
// until its TTL (plus tolerance) runs out. Acknowledged acquires, extends
// and fences are never lost; see the release query in queries.go.
func (d *Driver) Release(ctx context.Context, _, lockID string) (driver.ReleaseResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	if err := driver.CheckID(ctx, lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	var found, deleted int64
	var err error
	// A lock taken by a hand-off waiter goes straight to the hand-over
	// statement: its key most likely has more waiters.
	handoff := d.wasContended(lockID)
	if !handoff {
		args := []any{lockID, d.q.channel}
		var (
			seen   *bool
			probed time.Time
		)
		if d.opts.wakeups {
			seen, probed = d.listenerSeen()
			args = append(args, seen)
		}
		var live, queuedP, answer *bool
		var del bool
		err = d.pool.QueryRow(ctx, d.q.release, args...).
			Scan(&live, &del, nil, &queuedP, &answer, nil, nil)
		if err == nil && seen == nil && answer != nil {
			d.sawListener(*answer, probed)
		}
		found, deleted = boolInt(live != nil), boolInt(del)
		handoff = err == nil && queuedP != nil && *queuedP
	}
	if handoff {
		// Waiters are queued for the key: hand it over (a second round
		// trip, on contended keys only).
		seen, probed := d.listenerSeen()
		var answer *bool
		err = d.pool.QueryRow(ctx, d.q.releaseHandoff, lockID, d.q.channel, int64(driver.FenceMax), seen).
			Scan(&found, &deleted, nil, nil, nil, &answer)
		if err == nil && seen == nil && answer != nil {
			d.sawListener(*answer, probed)
		}
	}
	if err != nil {
		return driver.ReleaseResult{}, withLockID(mapError(ctx, err), lockID)
	}
	switch {
	case deleted > 0:
		return driver.ReleaseResult{OK: true}, nil
	case found > 0:
		return driver.ReleaseResult{Detail: driver.DetailExpired}, nil
	default:
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Extend sets the expiry of the live lock identified by lockID to
// server-now + ttl (a reset, which may shorten it) in one statement that
// locks the row before reading the clock. It never recreates an absent or
// expired lock.
func (d *Driver) Extend(ctx context.Context, _, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	ttlMs, err := driver.CheckIDTTL(ctx, lockID, ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	var found int64
	var exp *int64
	if err := d.pool.QueryRow(ctx, d.q.extend, lockID, ttlMs).Scan(&found, &exp); err != nil {
		return driver.ExtendResult{}, withLockID(mapError(ctx, err), lockID)
	}
	switch {
	case exp != nil:
		return driver.ExtendResult{OK: true, ExpiresAtMs: *exp}, nil
	case found > 0:
		return driver.ExtendResult{Detail: driver.DetailExpired}, nil
	default:
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
}

// cleanupTimeout bounds a fire-and-forget cleanup.
const cleanupTimeout = 5 * time.Second

// IsLocked reports whether a live lock holds key (one read-only
// statement). With [WithCleanupInIsLocked], a lock found expired by more
// than [driver.CleanupGuardMs] is deleted afterwards in the background;
// that never changes the result or touches the fence counter.
func (d *Driver) IsLocked(ctx context.Context, key string) (bool, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := driver.CheckKeyAs(ctx, key, baseKey)
	if err != nil {
		return false, err
	}
	var exp *int64
	var nowMs int64
	if err := d.pool.QueryRow(ctx, d.q.isLocked, base).Scan(&exp, &nowMs); err != nil {
		return false, withKey(mapError(ctx, err), k)
	}
	if exp == nil {
		return false, nil
	}
	live := driver.IsLive(*exp, nowMs)
	if !live && d.opts.cleanupInIsLocked && nowMs-*exp > driver.CleanupGuardMs {
		d.goBackground(cleanupTimeout, func(ctx context.Context) {
			_, _ = d.pool.Exec(ctx, d.q.cleanup, base)
		})
	}
	return live, nil
}

// LookupByKey returns the live lock of key, or nil. It is read-only.
func (d *Driver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	k, base, err := driver.CheckKeyAs(ctx, key, baseKey)
	if err != nil {
		return nil, err
	}
	info, err := d.lookup(ctx, d.q.lookupKey, base, "")
	return info, withKey(err, k)
}

// LookupByID returns the live lock lockID, or nil. It is read-only.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.CheckID(ctx, lockID); err != nil {
		return nil, err
	}
	info, err := d.lookup(ctx, d.q.lookupID, lockID, lockID)
	return info, withLockID(err, lockID)
}

func (d *Driver) lookup(ctx context.Context, sql, arg, wantID string) (*driver.LockInfo, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	var (
		base, id, fence, userKey string
		exp, acq, nowMs          int64
	)
	err := d.pool.QueryRow(ctx, sql, arg).Scan(&base, &id, &exp, &acq, &fence, &userKey, &nowMs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(ctx, err)
	}
	if (wantID != "" && id != wantID) || !driver.IsLive(exp, nowMs) {
		return nil, nil
	}
	f, err := driver.ParseFence(fence)
	if err != nil {
		return nil, &driver.LockError{Code: driver.Internal, Message: "stored fence is malformed", Cause: err}
	}
	return &driver.LockInfo{
		Key:          fromDBText(userKey),
		LockID:       id,
		Fence:        f,
		ExpiresAtMs:  exp,
		AcquiredAtMs: acq,
	}, nil
}

// listenerProbeTTL is how long a release reuses the answer of the listener
// probe, and listenSeenDelay how long a new LISTEN connection waits before
// it counts as active (see listener.run): twice the TTL, so that no release
// that starts after it still uses an answer from before the connection.
const (
	listenerProbeTTL = 50 * time.Millisecond
	listenSeenDelay  = 2 * listenerProbeTTL
)

// listenerSeen tells a plain release whether a LISTEN connection of the
// lock table is connected, so that it sends its NOTIFY only then: true
// while the driver's own listener is up, else the answer of the last
// pg_stat_activity probe if it was sent less than listenerProbeTTL ago,
// else nil: the release probes in its own statement and reports the answer
// (sawListener) with the time it was sent (probed). While one release's
// probe is in flight (sent less than listenerProbeTTL ago), the others keep
// using the previous answer up to listenSeenDelay old rather than probe as
// well, so that one probe is sent at a time. Every answer used is thus
// younger than listenSeenDelay, which a new listener waits out (see
// listener.run). Reading pg_stat_activity copies every backend's status:
// done in every release, it was the bottleneck of parallel releases, and
// done by every release that found the answer stale it still cost 6% of
// the server's CPU in 64-goroutine runs (docs/postgres.md).
func (d *Driver) listenerSeen() (seen *bool, probed time.Time) {
	d.lis.mu.Lock()
	up := d.lis.up
	d.lis.mu.Unlock()
	now := time.Now()
	if up {
		return &up, now
	}
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	if !d.seenAt.IsZero() {
		age := now.Sub(d.seenAt)
		inFlight := !d.probeAt.IsZero() && now.Sub(d.probeAt) < listenerProbeTTL
		if age < listenerProbeTTL || (inFlight && age < listenSeenDelay) {
			v := d.seen
			return &v, now
		}
	}
	d.probeAt = now
	return nil, now
}

// sawListener records the answer of a listener probe sent at probed.
func (d *Driver) sawListener(seen bool, probed time.Time) {
	d.seenMu.Lock()
	defer d.seenMu.Unlock()
	if probed.After(d.seenAt) {
		d.seen, d.seenAt = seen, probed
	}
	if !d.probeAt.After(probed) {
		d.probeAt = time.Time{}
	}
}
