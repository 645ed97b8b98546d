package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// I, J. The Guard layer end to end: Guard.Do (the Lock helper) and leases.
// Cases 112, 115–120, 123, 124, 140–144.

// lease is shorthand for the lease type of a Guard.
type lease[C driver.Capabilities] = *syncguard.Lease[C]

var errBoom = errors.New("conformance: boom")

// case112: fn's error is returned unchanged and the lock is still released,
// whether fn fails at once or after a sleep.
func case112[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	for _, delay := range []time.Duration{0, 10 * time.Millisecond} {
		k := c.key(fmt.Sprint("k:", delay))
		err := g.Do(c.ctx, k, func(ctx context.Context, _ lease[C]) error {
			if err := sleepCtx(ctx, delay); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			c.Errorf("Do with fn failing after %v = %v; want fn's error unchanged", delay, err)
		}
		c.wantLocked(k, false)
	}
}

// case115: fn runs while the lock is held; it is released afterwards.
func case115[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	for _, want := range []string{"success", "done"} {
		k := c.key(want)
		var got string
		err := g.Do(c.ctx, k, func(ctx context.Context, _ lease[C]) error {
			locked, err := c.d.IsLocked(ctx, k)
			if err != nil || !locked {
				c.Errorf("IsLocked inside fn = %v, %v; want true", locked, err)
			}
			got = want
			return nil
		})
		if err != nil || got != want {
			c.Errorf("Do = %v with result %q; want nil and %q", err, got, want)
		}
		c.wantLocked(k, false)
	}
}

// case116: results of several types flow out of fn; side effects of a
// result-less fn are visible.
func case116[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	type payload struct {
		ID   int
		Tags []string
	}
	var (
		s      string
		n      int
		p      payload
		effect atomic.Bool
	)
	do := func(name string, fn func()) {
		c.Helper()
		if err := g.Do(c.ctx, c.key(name), func(context.Context, lease[C]) error { fn(); return nil }); err != nil {
			c.Errorf("Do(%s) = %v", name, err)
		}
	}
	do("string", func() { s = "value" })
	do("int", func() { n = 42 })
	do("struct", func() { p = payload{ID: 7, Tags: []string{"a", "b"}} })
	do("void", func() { effect.Store(true) })
	if s != "value" || n != 42 || !effect.Load() {
		c.Errorf("results %q, %d, side effect %v; want \"value\", 42, true", s, n, effect.Load())
	}
	if diff := cmp.Diff(payload{ID: 7, Tags: []string{"a", "b"}}, p); diff != "" {
		c.Errorf("struct result (-want +got):\n%s", diff)
	}
}

// holdInDo runs g.Do on key in a goroutine; fn signals on the returned
// channel once the lock is held, then holds it for hold. The Do error is
// sent on the second channel.
func holdInDo[C driver.Capabilities](c *tc[C], g *syncguard.Guard[C], key string, hold time.Duration, opts ...syncguard.AcquireOption) (<-chan struct{}, <-chan error) {
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.Do(c.ctx, key, func(ctx context.Context, _ lease[C]) error {
			close(held)
			return sleepCtx(ctx, hold)
		}, opts...)
	}()
	return held, done
}

// await waits for ch or fails the case at its deadline.
func await[T any](c interface {
	Helper()
	Fatalf(string, ...any)
}, ctx context.Context, ch <-chan T, what string) T {
	c.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		c.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// case117: a waiter whose Timeout ends while the holder still works fails
// with AcquisitionTimeout (also matching ErrLocked) without running fn.
func case117[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	held, doneA := holdInDo(c, g, k, 800*time.Millisecond, syncguard.TTL(60*time.Second))
	await(c, c.ctx, held, "A to hold the lock")
	c.sleep(50 * time.Millisecond)
	var ranB atomic.Bool
	errB := g.Do(c.ctx, k, func(context.Context, lease[C]) error {
		ranB.Store(true)
		return nil
	}, syncguard.Timeout(300*time.Millisecond), syncguard.MaxRetries(50), syncguard.RetryDelay(5*time.Millisecond))
	if !errors.Is(errB, syncguard.ErrAcquisitionTimeout) || !errors.Is(errB, syncguard.ErrLocked) {
		c.Errorf("B = %v; want AcquisitionTimeout matching ErrLocked", errB)
	}
	if ranB.Load() {
		c.Error("B's fn ran although B never acquired the lock")
	}
	if err := await(c, c.ctx, doneA, "A to finish"); err != nil {
		c.Errorf("A = %v; want nil", err)
	}
	c.wantLocked(k, false)
}

// case118: a waiter retries until the holder is done; both run.
func case118[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	held, doneA := holdInDo(c, g, k, 30*time.Millisecond)
	await(c, c.ctx, held, "A to hold the lock")
	c.sleep(10 * time.Millisecond)
	var ranB atomic.Bool
	errB := g.Do(c.ctx, k, func(context.Context, lease[C]) error {
		ranB.Store(true)
		return nil
	}, syncguard.RetryDelay(10*time.Millisecond), syncguard.MaxRetries(50), syncguard.Timeout(max(2*time.Second, 2*c.tm.Wait)))
	if errB != nil || !ranB.Load() {
		c.Errorf("B = %v, ran %v; want nil and ran", errB, ranB.Load())
	}
	if err := await(c, c.ctx, doneA, "A to finish"); err != nil {
		c.Errorf("A = %v; want nil", err)
	}
	c.wantLocked(k, false)
}

// case119: the second holder starts only after the first ended.
func case119[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	var (
		mu  sync.Mutex
		log []string
	)
	note := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}
	held := make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		doneA <- g.Do(c.ctx, k, func(ctx context.Context, _ lease[C]) error {
			note("first:start")
			close(held)
			err := sleepCtx(ctx, 50*time.Millisecond)
			note("first:end")
			return err
		})
	}()
	await(c, c.ctx, held, "the first holder")
	c.sleep(10 * time.Millisecond)
	errB := g.Do(c.ctx, k, func(context.Context, lease[C]) error {
		note("second:start")
		note("second:end")
		return nil
	}, syncguard.Timeout(2*c.tm.Wait), syncguard.RetryDelay(10*time.Millisecond))
	if errB != nil {
		c.Errorf("second = %v; want nil", errB)
	}
	if err := await(c, c.ctx, doneA, "the first holder to finish"); err != nil {
		c.Errorf("first = %v; want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	end, start := slices.Index(log, "first:end"), slices.Index(log, "second:start")
	if end < 0 || start < 0 || end > start {
		c.Errorf("event log %q; want first:end before second:start", log)
	}
}

// case120: sequential use of one key and parallel use of three keys. The
// parallel sections are held at the same time (a barrier proves it) and
// finish within 100ms + Timing.ParallelBudget.
func case120[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("seq")
	var got []int
	for i := range 3 {
		if err := g.Do(c.ctx, k, func(context.Context, lease[C]) error { got = append(got, i); return nil }); err != nil {
			c.Errorf("sequential Do %d = %v", i, err)
		}
	}
	if diff := cmp.Diff([]int{0, 1, 2}, got); diff != "" {
		c.Errorf("sequential results (-want +got):\n%s", diff)
	}
	c.wantLocked(k, false)

	b := newBarrier(3)
	start := time.Now()
	gather(3, func(i int) {
		err := g.Do(c.ctx, c.key(fmt.Sprint("par:", i)), func(ctx context.Context, _ lease[C]) error {
			if !b.arrive(ctx) {
				return errors.New("the three sections never ran at the same time")
			}
			return sleepCtx(ctx, 100*time.Millisecond)
		})
		if err != nil {
			c.Errorf("parallel Do %d = %v", i, err)
		}
	})
	if el, budget := time.Since(start), 100*time.Millisecond+c.tm.ParallelBudget; el >= budget {
		c.Errorf("three 100ms sections on distinct keys took %v; want < %v", el, budget)
	}
	for i := range 3 {
		c.wantLocked(c.key(fmt.Sprint("par:", i)), false)
	}
}

// case123: cancelling the caller's context inside fn does not leak the
// lock: Do releases on a detached context.
func case123[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	_ = g.Do(ctx, k, func(context.Context, lease[C]) error {
		cancel()
		return nil
	})
	c.wantLocked(k, false)
}

// case124: fn receives the lease (lock ID and fence as the store has them);
// a lock that expired while fn ran is reported as ErrLockLost.
func case124[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	err := g.Do(c.ctx, k, func(ctx context.Context, l lease[C]) error {
		info, err := c.d.LookupByKey(ctx, k)
		if err != nil || info == nil {
			return fmt.Errorf("LookupByKey inside fn = %+v, %v", info, err)
		}
		if info.LockID != l.LockID() || info.Fence != c.leaseFence(l) {
			c.Errorf("lease (lockID hash %s, fence %v) differs from LookupByKey %+v",
				driver.HashKey(l.LockID()), c.leaseFence(l), info)
		}
		if ok, err := c.guard().Owns(ctx, l.LockID()); err != nil || !ok {
			c.Errorf("Owns(lease's lock ID) = %v, %v; want true", ok, err)
		}
		return nil
	})
	if err != nil {
		c.Errorf("Do = %v; want nil", err)
	}

	k2 := c.key("lost")
	err = g.Do(c.ctx, k2, func(context.Context, lease[C]) error {
		return sleepCtx(c.ctx, c.tm.Wait)
	}, syncguard.AutoExtend(false), syncguard.TTL(200*time.Millisecond))
	if !errors.Is(err, syncguard.ErrLockLost) {
		c.Errorf("Do whose 200ms lock expired while fn ran for %v = %v; want an error matching ErrLockLost", c.tm.Wait, err)
	}
}

// case140: a deferred Close releases on every exit of the scope: normal
// return, error return and panic.
func case140[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	scope := func(k string, body func() error) (err error) {
		l, err := g.Acquire(c.ctx, k)
		if err != nil {
			return err
		}
		defer l.Close()
		if !c.isLocked(k) {
			c.Errorf("IsLocked(%q) inside the scope = false", k)
		}
		return body()
	}
	k1, k2, k3 := c.key("return"), c.key("error"), c.key("panic")
	if err := scope(k1, func() error { return nil }); err != nil {
		c.Fatalf("scope: %v", err)
	}
	c.wantLocked(k1, false)
	if err := scope(k2, func() error { return errBoom }); err != errBoom {
		c.Fatalf("scope = %v; want errBoom", err)
	}
	c.wantLocked(k2, false)
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				c.Errorf("recovered %v; want errBoom", r)
			}
		}()
		_ = scope(k3, func() error { panic(errBoom) })
	}()
	c.wantLocked(k3, false)
}

// case141: Release through the lease, then again, then Extend.
func case141[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	l, err := g.Acquire(c.ctx, k)
	if err != nil {
		c.Fatalf("Acquire: %v", err)
	}
	defer l.Close()
	if ok, err := l.Release(c.ctx); err != nil || !ok {
		c.Errorf("lease.Release = %v, %v; want true", ok, err)
	}
	c.wantLocked(k, false)
	if ok, err := l.Release(c.ctx); err != nil || ok {
		c.Errorf("second lease.Release = %v, %v; want false", ok, err)
	}
	if ok, err := l.Extend(c.ctx, 5*time.Second); err != nil || ok {
		c.Errorf("lease.Extend after release = %v, %v; want false", ok, err)
	}
}

// case142: Extend through the lease keeps it alive.
func case142[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	l, err := g.Acquire(c.ctx, k, syncguard.TTL(500*time.Millisecond))
	if err != nil {
		c.Fatalf("Acquire: %v", err)
	}
	defer l.Close()
	exp := l.ExpiresAtMs()
	c.sleep(200 * time.Millisecond)
	if ok, err := l.Extend(c.ctx, 5*time.Second); err != nil || !ok {
		c.Fatalf("lease.Extend = %v, %v; want true", ok, err)
	}
	if l.ExpiresAtMs() <= exp {
		c.Errorf("lease expiry after Extend = %d; want > %d", l.ExpiresAtMs(), exp)
	}
	c.sleep(400 * time.Millisecond)
	c.wantLocked(k, true)
}

// case143: a failed acquisition's (nil) lease does nothing on Close: the
// holder keeps its lock.
func case143[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	func() {
		l, err := g.TryAcquire(c.ctx, k, syncguard.TTL(100*time.Millisecond))
		//lint:ignore SA5001 Close of the nil lease a failed TryAcquire returns is part of the case
		defer l.Close()
		if !errors.Is(err, syncguard.ErrLocked) || l != nil {
			c.Errorf("TryAcquire of a held key = %v, %v; want nil, ErrLocked", l, err)
		}
		if ok, err := l.Release(c.ctx); ok || err != nil {
			c.Errorf("Release of the failed lease = %v, %v; want false, nil", ok, err)
		}
	}()
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case144: nested scopes release inner then outer; parallel scopes on
// three keys all release.
func case144[C driver.Capabilities](c *tc[C]) {
	g := c.guard()
	k1, k2 := c.key("outer"), c.key("inner")
	func() {
		outer, err := g.Acquire(c.ctx, k1)
		if err != nil {
			c.Fatalf("Acquire outer: %v", err)
		}
		defer outer.Close()
		func() {
			inner, err := g.Acquire(c.ctx, k2)
			if err != nil {
				c.Fatalf("Acquire inner: %v", err)
			}
			defer inner.Close()
			c.wantLocked(k1, true)
			c.wantLocked(k2, true)
		}()
		c.wantLocked(k2, false)
		c.wantLocked(k1, true)
	}()
	c.wantLocked(k1, false)

	gather(3, func(i int) {
		k := c.key(fmt.Sprint("par:", i))
		l, err := g.Acquire(c.ctx, k)
		if err != nil {
			c.Errorf("Acquire(%q): %v", k, err)
			return
		}
		defer l.Close()
		_ = sleepCtx(c.ctx, 50*time.Millisecond)
	})
	for i := range 3 {
		c.wantLocked(c.key(fmt.Sprint("par:", i)), false)
	}
}
