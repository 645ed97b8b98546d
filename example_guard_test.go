package syncguard_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// Do runs a function while holding a lock and releases it on every path.
// The lease passed to the function carries the fencing token to hand to the
// protected resource.
func ExampleGuard_Do() {
	g := syncguard.NewFenced(memory.New())
	ctx := context.Background()

	err := g.Do(ctx, "payment:123", func(ctx context.Context, l *syncguard.Lease[syncguard.Fenced]) error {
		locked, _ := g.IsLocked(ctx, "payment:123")
		fmt.Println("locked inside:", locked)
		fmt.Println("fence digits:", len(syncguard.FenceOf(l).String()))
		return nil
	})
	fmt.Println("error:", err)

	locked, _ := g.IsLocked(ctx, "payment:123")
	fmt.Println("locked after:", locked)
	// Output:
	// locked inside: true
	// fence digits: 15
	// error: <nil>
	// locked after: false
}

// Acquire returns a lease for manual control; release it with Close (or
// Release, to learn whether the lock was still held).
func ExampleGuard_Acquire() {
	g := syncguard.New(memory.New())
	ctx := context.Background()

	lease, err := g.Acquire(ctx, "report:daily", syncguard.TTL(time.Minute), syncguard.Timeout(time.Second))
	if err != nil {
		fmt.Println("acquire failed:", err)
		return
	}
	defer lease.Close()
	fmt.Println("key:", lease.Key())

	// A second acquisition of the same key gives up once its retries or its
	// timeout are exhausted; the error matches ErrLocked.
	_, err = g.Acquire(ctx, "report:daily", syncguard.MaxRetries(2), syncguard.RetryDelay(time.Millisecond))
	fmt.Println("contended:", errors.Is(err, syncguard.ErrLocked), errors.Is(err, syncguard.ErrAcquisitionTimeout))

	ok, err := lease.Release(ctx)
	fmt.Println("released:", ok, err)
	// Output:
	// key: report:daily
	// contended: true true
	// released: true <nil>
}

// TryAcquire makes exactly one attempt; on contention it returns a nil
// lease and ErrLocked.
func ExampleGuard_TryAcquire() {
	g := syncguard.New(memory.New())
	ctx := context.Background()

	first, err := g.TryAcquire(ctx, "job:cleanup")
	if err != nil {
		fmt.Println("unexpected:", err)
		return
	}
	defer first.Close()

	second, err := g.TryAcquire(ctx, "job:cleanup")
	fmt.Println("second lease is nil:", second == nil)
	fmt.Println("locked:", errors.Is(err, syncguard.ErrLocked))
	// Output:
	// second lease is nil: true
	// locked: true
}

// FenceOf returns a lease's fencing token: it grows with every acquisition
// of the key, so a protected resource can refuse writes carrying an older
// fence. Fences are floored by the clock (15 digits, about 6·10¹² in 2027),
// so they also grow after the key's state is gone. It compiles only for
// drivers whose capabilities declare fencing.
func ExampleFenceOf() {
	g := syncguard.NewFenced(memory.New())
	ctx := context.Background()

	var last syncguard.Fence
	for range 3 {
		l, err := g.TryAcquire(ctx, "inventory")
		if err != nil {
			fmt.Println("unexpected:", err)
			return
		}
		f := syncguard.FenceOf(l)
		fmt.Println("greater than the last:", f > last)
		last = f
		l.Close()
	}
	var failed *syncguard.Lease[syncguard.Fenced]
	fmt.Println(uint64(syncguard.FenceOf(failed)))
	// Output:
	// greater than the last: true
	// greater than the last: true
	// greater than the last: true
	// 0
}
