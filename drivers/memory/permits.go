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
	sh, nowMs, nowNs := d.lockShard(k)
	ps := sh.permits[k]
	if ps == nil {
		ps = &permitSet{}
	}
	n, least := ps.prune(nowMs), limit
	for _, p := range ps.holders {
		least = min(least, p.limit)
	}
	if n >= least {
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

// ReleasePermit deletes the live permit permitID of key.
func (d *Driver) ReleasePermit(ctx context.Context, key, permitID string) (driver.ReleaseResult, error) {
	var res driver.ReleaseResult
	err := d.onPermit(ctx, key, permitID, func(sh *shard, k string, ps *permitSet, i int, _ int64, detail string) {
		if res.Detail = detail; detail == "" {
			ps.holders = slices.Delete(ps.holders, i, i+1)
			res.OK = true
			signal(sh.pwatch[k])
		}
	})
	return res, err
}

// ExtendPermit sets the expiry of the live permit permitID of key to now +
// ttl.
func (d *Driver) ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (driver.ExtendResult, error) {
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	var res driver.ExtendResult
	err = d.onPermit(ctx, key, permitID, func(_ *shard, _ string, ps *permitSet, i int, nowMs int64, detail string) {
		if res.Detail = detail; detail == "" {
			res.OK, res.ExpiresAtMs = true, nowMs+ttlMs
			ps.holders[i].expiresAtMs = res.ExpiresAtMs
		}
	})
	return res, err
}

// onPermit checks a call on the permit (key, permitID) and runs fn under
// the mutex of the key's shard sh with the normalised key k, its pruned
// permit set, the permit's index and the time, or with detail "expired" or
// "not-found" (and ps nil when the key has no set). The set is settled
// afterwards.
func (d *Driver) onPermit(ctx context.Context, key, permitID string, fn func(sh *shard, k string, ps *permitSet, i int, nowMs int64, detail string)) error {
	if err := driver.ValidateLockID(permitID); err != nil {
		return err
	}
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return err
	}
	sh, nowMs, nowNs := d.lockShard(k)
	defer sh.mu.Unlock()
	ps := sh.permits[k]
	if ps == nil {
		fn(sh, k, nil, -1, nowMs, driver.DetailNotFound)
		return nil
	}
	find := func() int { return slices.IndexFunc(ps.holders, func(p permit) bool { return p.id == permitID }) }
	i := find()
	expired := i >= 0 && !driver.IsLive(ps.holders[i].expiresAtMs, nowMs)
	ps.prune(nowMs)
	switch {
	case expired:
		fn(sh, k, ps, -1, nowMs, driver.DetailExpired)
	case i < 0:
		fn(sh, k, ps, -1, nowMs, driver.DetailNotFound)
	default:
		fn(sh, k, ps, find(), nowMs, "")
	}
	sh.settle(k, ps, nowNs)
	return nil
}

// Permits returns the live permits of key in fence order.
func (d *Driver) Permits(ctx context.Context, key string) ([]driver.LockInfo, error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, err
	}
	sh, nowMs, _ := d.lockShard(k)
	defer sh.mu.Unlock()
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
