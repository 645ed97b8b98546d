package conformance

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/semaphore"
)

// Permits (docs/contract.md#permits): P01–P12.

func (c *tc[C]) acquirePermit(key string, limit int, ttl time.Duration) driver.AcquireResult {
	c.Helper()
	r, err := c.p.AcquirePermit(c.ctx, key, limit, ttl)
	if err != nil {
		c.Fatalf("AcquirePermit(%q, %d, %v): unexpected error: %v", key, limit, ttl, err)
	}
	return r
}

func (c *tc[C]) mustPermit(key string, limit int, ttl time.Duration) driver.AcquireResult {
	c.Helper()
	r := c.acquirePermit(key, limit, ttl)
	if !r.Acquired || r.LockID == "" || r.Fence == 0 {
		c.Fatalf("AcquirePermit(%q, %d) = %+v; want a permit", key, limit, r)
	}
	return r
}

func (c *tc[C]) wantFull(key string, limit int) {
	c.Helper()
	r := c.acquirePermit(key, limit, 30*time.Second)
	if r.Acquired || r.Reason != driver.ReasonLocked {
		c.Fatalf("AcquirePermit(%q, %d) = %+v; want Acquired false, Reason %q", key, limit, r, driver.ReasonLocked)
	}
}

func (c *tc[C]) wantPermitRelease(key, id string, ok bool) {
	c.Helper()
	r, err := c.p.ReleasePermit(c.ctx, key, id)
	if err != nil {
		c.Fatalf("ReleasePermit(%q): unexpected error: %v", id, err)
	}
	if r.OK != ok {
		c.Fatalf("ReleasePermit(%q) = %+v; want OK %v", id, r, ok)
	}
}

func (c *tc[C]) wantHeld(key string, n int) []driver.LockInfo {
	c.Helper()
	p, err := c.p.Permits(c.ctx, key)
	if err != nil {
		c.Fatalf("Permits(%q): unexpected error: %v", key, err)
	}
	if len(p) != n {
		c.Fatalf("Permits(%q) = %d permits %+v; want %d", key, len(p), p, n)
	}
	for i := range p {
		if i > 0 && p[i].Fence <= p[i-1].Fence {
			c.Errorf("Permits(%q): fences %v then %v; want fence order", key, p[i-1].Fence, p[i].Fence)
		}
	}
	return p
}

// P01: a key gives out limit permits with strictly increasing fences, then
// is full; Permits lists them.
func p01[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	lo := c.floorNow(-driver.Tolerance)
	var ids []string
	var last syncguard.Fence
	for i := range 3 {
		r := c.mustPermit(k, 3, 30*time.Second)
		if i == 0 {
			c.wantFloored("first permit", r.Fence, lo)
		}
		if r.Fence <= last {
			c.Errorf("permit %d fence %v; want > %v", i, r.Fence, last)
		}
		last = r.Fence
		ids = append(ids, r.LockID)
	}
	c.wantFull(k, 3)
	held := c.wantHeld(k, 3)
	for i, p := range held {
		if p.LockID != ids[i] {
			c.Errorf("Permits[%d].LockID = %q; want %q", i, p.LockID, ids[i])
		}
	}
}

// P02: a release frees a permit, exactly once; unknown IDs are results.
func p02[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	a := c.mustPermit(k, 2, 30*time.Second)
	c.mustPermit(k, 2, 30*time.Second)
	c.wantFull(k, 2)
	c.wantPermitRelease(k, a.LockID, true)
	c.wantPermitRelease(k, a.LockID, false)
	c.wantPermitRelease(k, driver.NewLockID(), false)
	c.wantPermitRelease(c.key("other"), a.LockID, false)
	c.mustPermit(k, 2, 30*time.Second)
	c.wantFull(k, 2)
}

// P03: fences of a key's permits strictly increase across releases,
// expiry and concurrent acquisitions.
func p03[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	var last syncguard.Fence
	for range 20 {
		r := c.mustPermit(k, 2, 30*time.Second)
		if r.Fence <= last {
			c.Fatalf("fence %v after %v; want strictly greater", r.Fence, last)
		}
		last = r.Fence
		c.wantPermitRelease(k, r.LockID, true)
	}
	var mu sync.Mutex
	var fences []syncguard.Fence
	gather(8, func(int) {
		for range 10 {
			r, err := c.p.AcquirePermit(c.ctx, k, 4, 30*time.Second)
			if err != nil {
				c.Errorf("AcquirePermit: %v", err)
				return
			}
			if r.Acquired {
				mu.Lock()
				fences = append(fences, r.Fence)
				mu.Unlock()
				if _, err := c.p.ReleasePermit(c.ctx, k, r.LockID); err != nil {
					c.Errorf("ReleasePermit: %v", err)
				}
			}
		}
	})
	seen := map[syncguard.Fence]bool{}
	for _, f := range fences {
		if f <= last || seen[f] {
			c.Errorf("concurrent permit fence %v: want unique and > %v", f, last)
		}
		seen[f] = true
	}
	if len(fences) == 0 {
		c.Error("no concurrent acquisition succeeded")
	}
}

// P04: the permit of a holder that never releases comes back once its
// TTL and the tolerance have passed.
func p04[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	a := c.mustPermit(k, 1, c.tm.Short)
	c.wantFull(k, 1)
	c.sleep(c.tm.Wait)
	c.wantHeld(k, 0)
	b := c.mustPermit(k, 1, 30*time.Second)
	if b.Fence <= a.Fence {
		c.Errorf("fence after expiry %v; want > %v", b.Fence, a.Fence)
	}
	c.wantPermitRelease(k, a.LockID, false)
	c.wantHeld(k, 1)
}

// P05: an extension resets a live permit's expiry; it never recreates a
// released or expired one.
func p05[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	a := c.mustPermit(k, 1, 500*time.Millisecond)
	c.sleep(300 * time.Millisecond)
	e, err := c.p.ExtendPermit(c.ctx, k, a.LockID, 2*time.Second)
	if err != nil || !e.OK || e.ExpiresAtMs <= a.ExpiresAtMs {
		c.Fatalf("ExtendPermit = %+v, %v; want OK with ExpiresAtMs > %d", e, err, a.ExpiresAtMs)
	}
	c.sleep(c.tm.Short + 300*time.Millisecond) // past the first expiry and its tolerance
	c.wantFull(k, 1)
	c.wantPermitRelease(k, a.LockID, true)
	e, err = c.p.ExtendPermit(c.ctx, k, a.LockID, 2*time.Second)
	if err != nil || e.OK {
		c.Fatalf("ExtendPermit of a released permit = %+v, %v; want OK false", e, err)
	}
	c.wantHeld(k, 0)
	b := c.mustPermit(k, 1, c.tm.Short)
	c.sleep(c.tm.Wait)
	e, err = c.p.ExtendPermit(c.ctx, k, b.LockID, 30*time.Second)
	if err != nil || e.OK {
		c.Fatalf("ExtendPermit of an expired permit = %+v, %v; want OK false", e, err)
	}
	c.wantHeld(k, 0)
}

// P06: semaphores of one key with different limits: the smallest limit in
// use wins.
func p06[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	a := c.mustPermit(k, 2, 30*time.Second)
	c.mustPermit(k, 5, 30*time.Second) // 1 held < min(5, 2)
	c.wantFull(k, 5)                   // 2 held, smallest live limit 2
	c.wantPermitRelease(k, a.LockID, true)
	c.wantFull(k, 1) // 1 held, the caller's limit 1
	c.mustPermit(k, 5, 30*time.Second)
	c.wantHeld(k, 2)
	// Each permit keeps its caller's limit, not the one in force when it
	// was granted: the second permit (limit 5, granted under limit 2) no
	// longer restricts the key to 2.
	c.mustPermit(k, 5, 30*time.Second)
	c.wantHeld(k, 3)
}

// P07: under concurrent acquisitions through several driver values the
// number of holders never exceeds the limit.
func p07[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	const limit = 3
	drivers := []driver.PermitStore{c.p}
	for range 2 {
		if p, ok := any(c.h.Driver()).(driver.PermitStore); ok {
			drivers = append(drivers, p)
		}
	}
	var held, most, granted atomic.Int64
	gather(12, func(i int) {
		p := drivers[i%len(drivers)]
		for range 15 {
			r, err := p.AcquirePermit(c.ctx, k, limit, 30*time.Second)
			if err != nil {
				c.Errorf("AcquirePermit: %v", err)
				return
			}
			if !r.Acquired {
				continue
			}
			granted.Add(1)
			n := held.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			held.Add(-1)
			if rr, err := p.ReleasePermit(c.ctx, k, r.LockID); err != nil || !rr.OK {
				c.Errorf("ReleasePermit = %+v, %v; want OK", rr, err)
			}
		}
	})
	if m := most.Load(); m > limit {
		c.Errorf("%d permits held at once; limit %d", m, limit)
	}
	if granted.Load() == 0 {
		c.Error("no permit was granted")
	}
	c.wantHeld(k, 0)
}

// P08: permits, locks and records of one key are separate.
func p08[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	l := c.mustAcquire(k, 30*time.Second)
	p := c.mustPermit(k, 1, 30*time.Second)
	c.wantFull(k, 1)
	c.wantLocked(k, true)
	c.wantRelease(l.LockID, true)
	c.wantHeld(k, 1)
	c.wantPermitRelease(k, l.LockID, false)
	c.wantPermitRelease(k, p.LockID, true)
	c.wantLocked(k, false)
}

// P09: invalid input is InvalidArgument.
func p09[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	for _, limit := range []int{0, -1, driver.MaxPermits + 1} {
		_, err := c.p.AcquirePermit(c.ctx, k, limit, time.Second)
		c.wantCode("AcquirePermit with limit "+strconv.Itoa(limit), err, driver.InvalidArgument, "")
	}
	_, err := c.p.AcquirePermit(c.ctx, "", 1, time.Second)
	c.wantCode("AcquirePermit of an empty key", err, driver.InvalidArgument, "")
	_, err = c.p.AcquirePermit(c.ctx, k, 1, 0)
	c.wantCode("AcquirePermit with TTL 0", err, driver.InvalidArgument, "")
	_, err = c.p.ReleasePermit(c.ctx, k, "not-a-lock-id")
	c.wantCode("ReleasePermit of a malformed ID", err, driver.InvalidArgument, "")
	_, err = c.p.ExtendPermit(c.ctx, k, driver.NewLockID(), 0)
	c.wantCode("ExtendPermit with TTL 0", err, driver.InvalidArgument, "")
	_, err = c.p.Permits(c.ctx, "")
	c.wantCode("Permits of an empty key", err, driver.InvalidArgument, "")
	c.wantHeld(k, 0)
}

// P10: a context that has ended is Aborted or NetworkTimeout and changes
// nothing.
func p10[C driver.Capabilities](c *tc[C]) {
	k := c.key("sem")
	ctx, cancel := context.WithCancel(c.ctx)
	cancel()
	_, err := c.p.AcquirePermit(ctx, k, 1, time.Second)
	c.wantCode("AcquirePermit with a cancelled context", err, driver.Aborted, "")
	if !errors.Is(err, context.Canceled) {
		c.Errorf("AcquirePermit with a cancelled context: %v; want it to wrap context.Canceled", err)
	}
	c.wantHeld(k, 0)
}

// P11: the semaphore package end to end: leases of permits, never more
// than N holders, Held, and fences that are unique and increase per
// worker.
func p11[C driver.Capabilities](c *tc[C]) {
	s, err := semaphore.New[syncguard.Fenced](fencedPermits[C]{c.d, c.p}, 2)
	if err != nil {
		c.Fatalf("semaphore.New: %v", err)
	}
	k := c.key("sem")
	var held, most atomic.Int64
	var mu sync.Mutex
	seen := map[syncguard.Fence]bool{}
	gather(6, func(int) {
		// Two holders at a time may start their functions in either
		// order, so fences increase per worker (each acquisition starts
		// after the worker's previous one ended) and are unique, but
		// need not increase in the order functions start.
		var last syncguard.Fence
		for range 3 {
			err := s.Do(c.ctx, k, func(ctx context.Context, l *syncguard.Lease[syncguard.Fenced]) error {
				n := held.Add(1)
				defer held.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				f := syncguard.FenceOf(l)
				if f <= last {
					c.Errorf("lease fence %v after this worker's %v", f, last)
				}
				last = f
				mu.Lock()
				if seen[f] {
					c.Errorf("lease fence %v handed out twice", f)
				}
				seen[f] = true
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				return nil
			}, syncguard.Timeout(20*time.Second), syncguard.MaxRetries(1000))
			if err != nil {
				c.Errorf("Do: %v", err)
			}
		}
	})
	if m := most.Load(); m > 2 {
		c.Errorf("%d holders at once; semaphore of 2", m)
	}
	l, err := s.TryAcquire(c.ctx, k)
	if err != nil {
		c.Fatalf("TryAcquire: %v", err)
	}
	defer l.Close()
	if n, err := s.Held(c.ctx, k); err != nil || n != 1 {
		c.Errorf("Held = %d, %v; want 1", n, err)
	}
}

// P12: a waiter of a full semaphore wakes when a permit is released
// (driver.PermitWatcher): it gets the permit long before its backoff
// would have retried.
func p12[C driver.Capabilities](c *tc[C]) {
	if _, ok := c.p.(driver.PermitWatcher); !ok {
		c.Skip("the permit store is no driver.PermitWatcher: waiters of a full semaphore poll")
	}
	k := c.key("sem")
	held, err := c.p.AcquirePermit(c.ctx, k, 1, time.Minute)
	if err != nil || !held.Acquired {
		c.Fatalf("AcquirePermit = %+v, %v", held, err)
	}
	// The waiter is another driver value, as another process would have.
	d := c.h.Driver()
	p := any(d).(driver.PermitStore)
	s, err := semaphore.New[syncguard.Fenced](watchedFencedPermits[C]{fencedPermits[C]{d, p}, p.(driver.PermitWatcher)}, 1)
	if err != nil {
		c.Fatalf("semaphore.New: %v", err)
	}
	const backoff = 30 * time.Second
	got := make(chan error, 1)
	go func() {
		l, err := s.Acquire(c.ctx, k, syncguard.RetryDelay(backoff), syncguard.Backoff(syncguard.BackoffFixed), syncguard.Timeout(2*backoff))
		if err == nil {
			_, err = l.Release(c.ctx)
		}
		got <- err
	}()
	time.Sleep(300 * time.Millisecond) // most likely waiting by now; either way it must not wait out its backoff
	released := time.Now()
	if r, err := c.p.ReleasePermit(c.ctx, k, held.LockID); err != nil || !r.OK {
		c.Fatalf("ReleasePermit = %+v, %v", r, err)
	}
	select {
	case err := <-got:
		if err != nil {
			c.Fatalf("Acquire: %v", err)
		}
		if took := time.Since(released); took > 5*time.Second {
			c.Errorf("the waiter got the permit %v after the release; want it woken at once", took)
		}
	case <-time.After(backoff / 2):
		c.Fatalf("the waiter did not get the permit within %v of the release (its backoff is %v)", backoff/2, backoff)
	}
}

// watchedFencedPermits is fencedPermits with the store's release watcher.
type watchedFencedPermits[C driver.Capabilities] struct {
	fencedPermits[C]
	driver.PermitWatcher
}

// fencedPermits is a fencing driver under test as a
// driver.Driver[syncguard.Fenced], for semaphore.New.
type fencedPermits[C driver.Capabilities] struct {
	driver.Driver[C]
	driver.PermitStore
}

func (f fencedPermits[C]) Capabilities() syncguard.Fenced {
	return any(f.Driver.Capabilities()).(syncguard.Fenced)
}
