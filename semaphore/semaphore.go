// Package semaphore is a distributed counting semaphore: at most N holders
// of a key at a time, across processes, on any driver that implements
// [driver.PermitStore] (memory, Redis, PostgreSQL, Firestore).
//
// Each permit is a [syncguard.Lease]: it has a TTL, extends itself while
// [Semaphore.Do] runs (or with AutoExtend), closes Lost when it can no
// longer be kept, and carries a fence strictly greater than the fence of
// every earlier permit of its key, so a store written under permits can
// refuse a stale holder (see [syncguard.FencedWriter]). A permit whose
// holder crashed comes back when its TTL (plus the contract's tolerance)
// has passed.
//
// The permit count is the Semaphore's. Semaphores of one key built with
// different counts share the key: the smallest count among the caller's
// and the live holders' wins, so a key is never held more often than the
// smallest count in use.
package semaphore

import (
	"context"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Semaphore hands out up to Permits() permits per key. It is safe for
// concurrent use.
type Semaphore[C syncguard.Fenced] struct {
	g     *syncguard.Guard[C]
	store driver.PermitStore
	n     int
}

// New returns a semaphore of permits permits per key over d, which must
// implement [driver.PermitStore]. opts are the [syncguard.New] options
// (observer, logger, release timeout, default AcquireOptions); their
// events name the semaphore's key. New returns InvalidArgument for a count
// outside 1…[driver.MaxPermits], a driver without permits or an invalid
// option.
func New[C syncguard.Fenced](d driver.Driver[C], permits int, opts ...syncguard.Option) (*Semaphore[C], error) {
	if err := driver.CheckPermits(permits); err != nil {
		return nil, err
	}
	ps, ok := d.(driver.PermitStore)
	if !ok {
		return nil, driver.NewError(driver.InvalidArgument, "semaphore: the driver keeps no permits (it is no driver.PermitStore)")
	}
	var locks driver.Driver[C] = &permitLocks[C]{ps: ps, caps: d.Capabilities(), n: permits}
	if pw, ok := ps.(driver.PermitWatcher); ok {
		locks = watchedPermits[C]{locks.(*permitLocks[C]), pw}
	}
	g := syncguard.New[C](locks, opts...)
	if err := g.Err(); err != nil {
		return nil, err
	}
	return &Semaphore[C]{g: g, store: ps, n: permits}, nil
}

// Permits returns the semaphore's permit count.
func (s *Semaphore[C]) Permits() int { return s.n }

// Acquire takes a permit of key, waiting while all are held, with the
// retry, timeout and AcquireOptions of [syncguard.Guard.Acquire] (a full
// semaphore gives up with an AcquisitionTimeout error matching
// [syncguard.ErrLocked]). Release the permit with its Release or Close.
func (s *Semaphore[C]) Acquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error) {
	return s.g.Acquire(ctx, key, opts...)
}

// TryAcquire makes one attempt to take a permit of key and returns
// [syncguard.ErrLocked] if all are held.
func (s *Semaphore[C]) TryAcquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error) {
	return s.g.TryAcquire(ctx, key, opts...)
}

// Do takes a permit of key like Acquire, runs fn and releases the permit
// on every path, as [syncguard.Guard.Do] does for a lock.
func (s *Semaphore[C]) Do(ctx context.Context, key string, fn func(ctx context.Context, l *syncguard.Lease[C]) error, opts ...syncguard.AcquireOption) error {
	return s.g.Do(ctx, key, fn, opts...)
}

// Held returns how many live permits of key are held.
func (s *Semaphore[C]) Held(ctx context.Context, key string) (int, error) {
	if err := driver.CheckContext(ctx); err != nil {
		return 0, err
	}
	p, err := s.store.Permits(ctx, key)
	return len(p), err
}

// permitLocks presents the permits of a PermitStore, n per key, as the lock
// contract, so that a Guard's acquisition loop, leases, heartbeat and
// telemetry serve the semaphore unchanged.
type permitLocks[C driver.Capabilities] struct {
	ps   driver.PermitStore
	caps C
	n    int
}

func (p *permitLocks[C]) Capabilities() C { return p.caps }

func (p *permitLocks[C]) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	return p.ps.AcquirePermit(ctx, key, p.n, ttl)
}

func (p *permitLocks[C]) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	return p.ps.ReleasePermit(ctx, key, lockID)
}

func (p *permitLocks[C]) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	return p.ps.ExtendPermit(ctx, key, lockID, ttl)
}

// IsLocked reports whether every permit of key is held.
func (p *permitLocks[C]) IsLocked(ctx context.Context, key string) (bool, error) {
	h, err := p.ps.Permits(ctx, key)
	return len(h) >= p.n, err
}

func (p *permitLocks[C]) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	return nil, driver.NewError(driver.InvalidArgument, "semaphore: permits have no single holder")
}

func (p *permitLocks[C]) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	return nil, driver.NewError(driver.InvalidArgument, "semaphore: permits have no lock-ID index")
}

// watchedPermits is permitLocks over a store that signals permit releases:
// a waiter of a full semaphore retries when a permit is released instead
// of sleeping its whole backoff.
type watchedPermits[C driver.Capabilities] struct {
	*permitLocks[C]
	pw driver.PermitWatcher
}

func (w watchedPermits[C]) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	return w.pw.WatchPermits(ctx, key)
}
