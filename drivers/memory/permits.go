package memory

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// permitSet is the semaphore state of one normalised key: its live (or
// not yet pruned) permits and its fence counter. Permits live in their own
// map, separate from lock data. Expired permits are pruned by every
// operation on the key; an empty set is deleted once the fence floor has
// passed its fence, so a new set continues the fences.
type permitSet struct {
	fence   int64
	holders []permit // in fence order
}

type permit struct {
	id           string
	fence        driver.Fence
	limit        int
	expiresAtMs  int64
	acquiredAtMs int64
}

// prune drops the permits that are no longer live at nowMs and reports
// how many are left.
func (ps *permitSet) prune(nowMs int64) int {
	ps.holders = slices.DeleteFunc(ps.holders, func(p permit) bool { return !driver.IsLive(p.expiresAtMs, nowMs) })
	return len(ps.holders)
}

// settle deletes the set of k when it holds no permit and a new set would
// continue its fences. The caller holds sh.mu.
func (sh *shard) settle(k string, ps *permitSet, nowNs int64) {
	if len(ps.holders) == 0 && int64(driver.FenceFloor(nowNs/1000)) > ps.fence {
		delete(sh.permits, k)
	}
}

// AcquirePermit takes one permit of key if fewer than limit (and fewer than
// the smallest limit of the live permits) are held. See
// [driver.PermitStore].
func (d *Driver) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	k, ttlMs, err := driver.CheckPermitKeyTTL(ctx, key, limit, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	sh := d.shardFor(k)
	sh.mu.Lock()
	nowMs, nowNs := d.now()
	ps := sh.permits[k]
	if ps == nil {
		ps = &permitSet{}
	}
	n := ps.prune(nowMs)
	for _, p := range ps.holders {
		limit = min(limit, p.limit)
	}
	if n >= limit {
		sh.mu.Unlock()
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	fence, warn, err := driver.CheckNewFence(max(ps.fence+1, int64(driver.FenceFloor(nowNs/1000))))
	if err != nil {
		sh.mu.Unlock()
		var le *driver.LockError
		if errors.As(err, &le) {
			le.Key = k
		}
		return driver.AcquireResult{}, err
	}
	id := driver.NewLockID()
	exp := nowMs + ttlMs
	ps.fence = int64(fence)
	ps.holders = append(ps.holders, permit{id: id, fence: fence, limit: limit, expiresAtMs: exp, acquiredAtMs: nowMs})
	sh.permits[k] = ps
	sh.mu.Unlock()
	if warn {
		d.warnFence(ctx, k, fence)
	}
	return driver.AcquireResult{Acquired: true, LockID: id, Fence: fence, ExpiresAtMs: exp}, nil
}

// find returns the permit set of the permit call (key, permitID), after
// pruning, and the index of the permit in it, or -1. The caller holds
// sh.mu.
func (sh *shard) findPermit(k, permitID string, nowMs int64) (ps *permitSet, i int, expired bool) {
	ps = sh.permits[k]
	if ps == nil {
		return nil, -1, false
	}
	i = slices.IndexFunc(ps.holders, func(p permit) bool { return p.id == permitID })
	expired = i >= 0 && !driver.IsLive(ps.holders[i].expiresAtMs, nowMs)
	ps.prune(nowMs)
	if expired {
		return ps, -1, true
	}
	return ps, slices.IndexFunc(ps.holders, func(p permit) bool { return p.id == permitID }), false
}

func checkPermitID(ctx context.Context, key, permitID string) (string, error) {
	if err := driver.ValidateLockID(permitID); err != nil {
		return "", err
	}
	return driver.CheckKey(ctx, key)
}

// ReleasePermit deletes the live permit permitID of key.
func (d *Driver) ReleasePermit(ctx context.Context, key, permitID string) (driver.ReleaseResult, error) {
	k, err := checkPermitID(ctx, key, permitID)
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	sh := d.shardFor(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs, nowNs := d.now()
	ps, i, expired := sh.findPermit(k, permitID, nowMs)
	if ps != nil {
		defer sh.settle(k, ps, nowNs)
	}
	switch {
	case expired:
		return driver.ReleaseResult{Detail: driver.DetailExpired}, nil
	case i < 0:
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	}
	ps.holders = slices.Delete(ps.holders, i, i+1)
	return driver.ReleaseResult{OK: true}, nil
}

// ExtendPermit sets the expiry of the live permit permitID of key to now +
// ttl.
func (d *Driver) ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (driver.ExtendResult, error) {
	k, err := checkPermitID(ctx, key, permitID)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	sh := d.shardFor(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs, nowNs := d.now()
	ps, i, expired := sh.findPermit(k, permitID, nowMs)
	if ps != nil {
		defer sh.settle(k, ps, nowNs)
	}
	switch {
	case expired:
		return driver.ExtendResult{Detail: driver.DetailExpired}, nil
	case i < 0:
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
	exp := nowMs + ttlMs
	ps.holders[i].expiresAtMs = exp
	return driver.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
}

// Permits returns the live permits of key in fence order.
func (d *Driver) Permits(ctx context.Context, key string) ([]driver.LockInfo, error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, err
	}
	sh := d.shardFor(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs, _ := d.now()
	ps := sh.permits[k]
	if ps == nil {
		return nil, nil
	}
	var out []driver.LockInfo
	for _, p := range ps.holders {
		if driver.IsLive(p.expiresAtMs, nowMs) {
			out = append(out, driver.LockInfo{Key: k, LockID: p.id, Fence: p.fence, ExpiresAtMs: p.expiresAtMs, AcquiredAtMs: p.acquiredAtMs})
		}
	}
	return out, nil
}
