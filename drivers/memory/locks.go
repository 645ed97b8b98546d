package memory

import (
	"context"
	"errors"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// keyState is the lock state of one normalised key. It is created by the
// first acquisition of the key and deleted by the sweep once it holds no
// lock and no waiters and the fence floor has passed its fence by
// [driver.FenceMarginMs] (keep), so memory follows the live locks. All
// fields but key and sh are guarded by sh.mu.
type keyState struct {
	key string // normalised key; immutable
	sh  *shard // shard of key; immutable

	fence        int64     // last fence handed out for key; never decreases
	keep         keepEntry // position in sh.keepExp: when the state may go
	lockID       string    // "" when no lock data is stored
	ids          *idShard  // index shard of lockID
	expiresAtMs  int64
	acquiredAtMs int64
	node         hnode // position in sh.lockExp while lock data is stored

	// qhead and qtail are the key's hand-off queue (see handoff.go): the
	// waiters whose attempts found the key locked, oldest first.
	qhead, qtail *waiter
}

func (ks *keyState) hn() *hnode { return &ks.node }

// keepEntry is a keyState's entry in its shard's keepExp heap.
type keepEntry struct {
	ks   *keyState
	node hnode
}

func (e *keepEntry) hn() *hnode { return &e.node }

// Acquire takes key for ttl if no live lock holds it. Contention is the
// result {Acquired: false, Reason: "locked"} and writes nothing. A new lock
// gets a fresh lock ID, the key's next fence and ExpiresAtMs = now + ttl. If
// the next fence would exceed [driver.FenceMax], Acquire fails with
// Internal and stores nothing. A free key is taken even while waiters of
// [Driver.WatchHandoff] are queued for it (which happens only after a lock
// expired without a release); a key granted to a waiter is locked.
func (d *Driver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	k, ttlMs, err := driver.CheckKeyTTL(ctx, key, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	sh, nowMs, nowNs := d.lockShard(k)
	ks := sh.keys[k]
	if ks != nil && ks.lockID != "" && driver.IsLive(ks.expiresAtMs, nowMs) {
		sh.mu.Unlock()
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	res, _, warn, err := d.acquireLocked(sh, ks, k, "", ttlMs, nowMs, nowNs)
	sh.mu.Unlock()
	if warn {
		d.warnFence(ctx, k, res.Fence)
	}
	return res, err
}

// acquireLocked is one acquisition attempt of the normalised key k of
// shard sh, whose mutex the caller holds; ks is sh.keys[k]. The new lock
// gets the ID id, or a freshly minted one if id is "". It returns the
// key's state (nil only for a never-locked key whose first fence
// overflowed) and whether the caller must log a fence warning once it has
// released sh.mu.
func (d *Driver) acquireLocked(sh *shard, ks *keyState, k, id string, ttlMs, nowMs, nowNs int64) (driver.AcquireResult, *keyState, bool, error) {
	if ks != nil && ks.lockID != "" && driver.IsLive(ks.expiresAtMs, nowMs) {
		return driver.AcquireResult{Reason: driver.ReasonLocked}, ks, false, nil
	}
	var last int64
	if ks != nil {
		last = ks.fence
	}
	fence, warn, err := driver.CheckNewFence(max(last+1, int64(driver.FenceFloor(nowNs/1000))))
	if err != nil {
		var le *driver.LockError
		if errors.As(err, &le) {
			le.Key = k
		}
		return driver.AcquireResult{}, ks, false, err
	}
	if ks == nil {
		ks = &keyState{key: k, sh: sh}
		sh.keys[k] = ks
	} else if ks.lockID != "" {
		// Overwrite an expired lock: its ID no longer resolves.
		d.dropLock(sh, ks)
	}
	if id == "" {
		// Minted only now, so that contention and overflow cost no
		// randomness.
		id = driver.NewLockID()
	}
	exp := nowMs + ttlMs
	d.writeLock(sh, ks, id, fence, exp, nowMs)
	ks.keep.ks = ks // also for a state a test harness made
	sh.keepExp.set(&ks.keep, nowMs+driver.FenceKeepMs(fence, nowNs/1000))
	d.sweep(sh, nowMs, nowNs)
	return driver.AcquireResult{Acquired: true, LockID: id, Fence: fence, ExpiresAtMs: exp}, ks, warn, nil
}

// writeLock stores the lock (id, fence, expiry exp, acquired at nowMs) as
// the lock data of ks, which holds none, and indexes it by id. The caller
// holds sh.mu and has checked fence with [driver.CheckNewFence].
func (d *Driver) writeLock(sh *shard, ks *keyState, id string, fence driver.Fence, exp, nowMs int64) {
	ks.ids = d.idShardFor(id)
	ks.fence = int64(fence)
	ks.lockID = id
	ks.expiresAtMs = exp
	ks.acquiredAtMs = nowMs
	sh.lockExp.set(ks, exp)
	ks.ids.index(id, ks)
}

// Release deletes the lock identified by lockID if it is live. Of
// concurrent or repeated releases of one lock exactly one reports OK.
// Detail is "not-found" for an unknown ID and "expired" for a lock past
// its tolerance window whose data had not been swept yet (that data is
// deleted; nobody could observe it any more).
//
// If waiters of [Driver.WatchHandoff] are queued for the key, the release
// grants the key to the oldest of them in the same atomic step (a new lock
// under its ID with the next fence) and signals that waiter.
func (d *Driver) Release(ctx context.Context, _, lockID string) (driver.ReleaseResult, error) {
	if err := driver.CheckID(ctx, lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	// Claim the ID: take it out of the index first, so that of concurrent
	// releases only one proceeds. Whatever happens next, the lock data of
	// this ID is deleted, so the index entry is never needed again.
	is := d.idShardFor(lockID)
	is.mu.Lock()
	ks := is.ids[lockID]
	if ks != nil {
		delete(is.ids, lockID)
	}
	is.mu.Unlock()
	if ks == nil {
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
	sh := ks.sh
	sh.mu.Lock()
	if ks.lockID != lockID { // taken over or swept since it was claimed
		sh.mu.Unlock()
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
	nowMs, nowNs := d.now()
	live := driver.IsLive(ks.expiresAtMs, nowMs)
	ks.ids = nil // already unindexed
	d.dropLock(sh, ks)
	var g grant
	if ks.qhead != nil { // hand the key to the oldest waiter
		g = d.handOff(sh, ks, nowMs)
	}
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	if g.warn {
		d.warnFence(ctx, ks.key, g.fence)
	}
	if !live {
		return driver.ReleaseResult{Detail: driver.DetailExpired}, nil
	}
	return driver.ReleaseResult{OK: true}, nil
}

// Extend sets the expiry of the live lock identified by lockID to now + ttl
// (a reset, which may shorten it), keeping its ID, fence and acquisition
// time. It never recreates an absent or expired lock.
func (d *Driver) Extend(ctx context.Context, _, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	ttlMs, err := driver.CheckIDTTL(ctx, lockID, ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	ks := d.resolve(lockID)
	if ks == nil {
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
	sh := ks.sh
	sh.mu.Lock()
	if ks.lockID != lockID {
		sh.mu.Unlock()
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
	nowMs, nowNs := d.now()
	if !driver.IsLive(ks.expiresAtMs, nowMs) {
		sh.mu.Unlock()
		return driver.ExtendResult{Detail: driver.DetailExpired}, nil
	}
	exp := nowMs + ttlMs
	ks.expiresAtMs = exp
	sh.lockExp.set(ks, exp)
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	return driver.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
}

// IsLocked reports whether a live lock holds key. It is read-only unless
// [WithCleanupInIsLocked] is set; then it also deletes the data of a lock
// of key expired by more than [driver.CleanupGuardMs], without changing
// the result or the fence counter.
func (d *Driver) IsLocked(ctx context.Context, key string) (bool, error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return false, err
	}
	sh, nowMs, _ := d.lockShard(k)
	ks := sh.keys[k]
	if ks == nil || ks.lockID == "" {
		sh.mu.Unlock()
		return false, nil
	}
	live := driver.IsLive(ks.expiresAtMs, nowMs)
	if !live && d.cleanupInIsLocked && nowMs-ks.expiresAtMs > driver.CleanupGuardMs {
		d.dropLock(sh, ks)
	}
	sh.mu.Unlock()
	return live, nil
}

// LookupByKey returns the live lock of key, or nil. It is read-only.
func (d *Driver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, err
	}
	sh, nowMs, _ := d.lockShard(k)
	info, ok := snapshot(sh.keys[k], "", nowMs)
	sh.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return &info, nil
}

// LookupByID returns the live lock lockID, or nil. It is read-only.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.CheckID(ctx, lockID); err != nil {
		return nil, err
	}
	ks := d.resolve(lockID)
	if ks == nil {
		return nil, nil
	}
	sh := ks.sh
	sh.mu.Lock()
	nowMs, _ := d.now()
	info, ok := snapshot(ks, lockID, nowMs)
	sh.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return &info, nil
}

// snapshot copies the live lock of ks, requiring lock ID wantID unless it is
// empty. The caller holds ks.sh.mu.
func snapshot(ks *keyState, wantID string, nowMs int64) (driver.LockInfo, bool) {
	if ks == nil || ks.lockID == "" || (wantID != "" && ks.lockID != wantID) ||
		!driver.IsLive(ks.expiresAtMs, nowMs) {
		return driver.LockInfo{}, false
	}
	return driver.LockInfo{
		Key:          ks.key,
		LockID:       ks.lockID,
		Fence:        driver.Fence(ks.fence),
		ExpiresAtMs:  ks.expiresAtMs,
		AcquiredAtMs: ks.acquiredAtMs,
	}, true
}

// resolve returns the key state that lockID was indexed under, or nil. The
// caller must re-check ks.lockID under ks.sh.mu.
func (d *Driver) resolve(lockID string) *keyState {
	is := d.idShardFor(lockID)
	is.mu.Lock()
	ks := is.ids[lockID]
	is.mu.Unlock()
	return ks
}

// index maps lockID to ks. Lock order: shard, then index shard.
func (is *idShard) index(lockID string, ks *keyState) {
	is.mu.Lock()
	is.ids[lockID] = ks
	is.mu.Unlock()
}

func (is *idShard) unindex(lockID string) {
	is.mu.Lock()
	delete(is.ids, lockID)
	is.mu.Unlock()
}

// dropLock deletes the lock data of ks (never its fence counter) and wakes
// the key's watchers and the head of its hand-off queue (a release then
// grants the key to that head; after a sweep or a cleanup its next attempt
// finds the key free). The caller holds sh.mu.
func (d *Driver) dropLock(sh *shard, ks *keyState) {
	if ks.ids != nil {
		ks.ids.unindex(ks.lockID)
		ks.ids = nil
	}
	ks.lockID = ""
	ks.expiresAtMs = 0
	ks.acquiredAtMs = 0
	sh.lockExp.remove(ks)
	sh.notify(ks.key)
	if ks.qhead != nil {
		ks.qhead.signal()
	}
}

func (d *Driver) warnFence(ctx context.Context, key string, f driver.Fence) {
	driver.WarnFence(ctx, d.logger, "memory", key, f)
}
