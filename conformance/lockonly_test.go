package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// lockOnly is a lock driver without fencing, records, rate or a lock-ID
// index (like the Redis lock-only mode): the suite must run it, skipping
// by capability the cases that need more.
type lockOnly struct{ mem *memory.Driver }

type lockOnlyCaps struct{ driver.WithServerTime }

func (lockOnlyCaps) Name() string { return "lock-only" }

var _ driver.Driver[lockOnlyCaps] = lockOnly{}

func (d lockOnly) Capabilities() lockOnlyCaps { return lockOnlyCaps{} }

func (d lockOnly) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	r, err := d.mem.Acquire(ctx, key, ttl)
	r.Fence = 0
	return r, err
}

// owned checks the lock ID and that key's live lock has it.
func (d lockOnly) owned(ctx context.Context, key, lockID string) (bool, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return false, err
	}
	if key == "" {
		return false, driver.NewError(driver.InvalidArgument, "lock-only: Release and Extend need the key")
	}
	info, err := d.mem.LookupByKey(ctx, key)
	return err == nil && info != nil && info.LockID == lockID, err
}

func (d lockOnly) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	if ok, err := d.owned(ctx, key, lockID); err != nil || !ok {
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, err
	}
	return d.mem.Release(ctx, key, lockID)
}

func (d lockOnly) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	if _, err := driver.TTLMillis(ttl); err != nil {
		return driver.ExtendResult{}, err
	}
	if ok, err := d.owned(ctx, key, lockID); err != nil || !ok {
		return driver.ExtendResult{Detail: driver.DetailNotFound}, err
	}
	return d.mem.Extend(ctx, key, lockID, ttl)
}

func (d lockOnly) IsLocked(ctx context.Context, key string) (bool, error) {
	return d.mem.IsLocked(ctx, key)
}

func (d lockOnly) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	info, err := d.mem.LookupByKey(ctx, key)
	if info != nil {
		info.Fence = 0
	}
	return info, err
}

func (d lockOnly) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return nil, err
	}
	return nil, driver.NewError(driver.InvalidArgument, "lock-only: no lock-ID index")
}

// TestLockOnlyDriver runs the whole suite against a driver without
// fencing: the cases that need fences, records, rate, an index or hand-off
// skip by capability and every other case passes.
func TestLockOnlyDriver(t *testing.T) {
	RunDriver(t, func(*testing.T) driver.Driver[lockOnlyCaps] { return lockOnly{memory.New()} }, Options{})
}
