package driver

import (
	"context"
	"fmt"
	"time"
)

// PermitStore is the counting-semaphore part of the driver contract
// (docs/contract.md#permits), used by the semaphore package. Permits live
// in a namespace of their own: a permit key never addresses a lock or a
// record, and its fence counter is not the lock fence counter of the same
// key. Callers pass input checked as for [LockStore], and limit checked by
// [CheckPermits].
type PermitStore interface {
	// AcquirePermit takes one permit of key for ttl, in one atomic step,
	// if the live permits of key number fewer than limit and fewer than
	// the limit each of them was acquired with: the smallest limit in use
	// wins. The permit gets a fresh ID and a fence strictly greater than
	// every fence handed out earlier for a permit of key (the lock rule:
	// max(counter+1, [FenceFloor](now))). A full semaphore is a result
	// (Acquired false, Reason "locked"), never an error, and writes
	// nothing.
	AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (AcquireResult, error)
	// ReleasePermit deletes the live permit permitID of key; as for
	// [LockStore.Release], of concurrent releases exactly one reports OK.
	ReleasePermit(ctx context.Context, key, permitID string) (ReleaseResult, error)
	// ExtendPermit sets the expiry of the live permit permitID of key to
	// authority-now + ttl. It never recreates an absent or expired permit.
	ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (ExtendResult, error)
	// Permits returns the live permits of key in fence order (Key is the
	// normalised key, LockID the permit ID). Diagnostic: never gate an
	// acquisition on it.
	Permits(ctx context.Context, key string) ([]LockInfo, error)
}

// PermitWatcher is an optional [PermitStore] interface, the permits'
// [ReleaseWatcher]: it tells waiters that a permit of key may have been
// released, so that a waiter of a full semaphore retries at once instead
// of sleeping its whole backoff. Spurious wake-ups are allowed; missed ones
// are bounded by the backoff fallback.
type PermitWatcher interface {
	// WatchPermits subscribes to permit releases of key, as
	// [ReleaseWatcher.WatchRelease] does to lock releases. The returned
	// channel receives a value (or is closed) when a permit of key may have
	// been released; stop ends the subscription and must be called once.
	WatchPermits(ctx context.Context, key string) (ch <-chan struct{}, stop func(), err error)
}

// MaxPermits is the largest permit count of a semaphore.
const MaxPermits = 1000

// CheckPermits checks a semaphore's permit count: 1 ≤ limit ≤ [MaxPermits].
func CheckPermits(limit int) error {
	if limit < 1 || limit > MaxPermits {
		return invalidArg(fmt.Sprintf("permits must be between 1 and %d, got %d", MaxPermits, limit))
	}
	return nil
}

// CheckPermitKeyTTL is a driver's check of AcquirePermit: [CheckPermits],
// then [CheckKeyTTL].
func CheckPermitKeyTTL(ctx context.Context, key string, limit int, ttl time.Duration) (string, int64, error) {
	if err := CheckPermits(limit); err != nil {
		return "", 0, err
	}
	return CheckKeyTTL(ctx, key, ttl)
}
