package conformance

import (
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// B. Contention: cases 9–15.

// case009: a held key is contended, as a result and not an error.
func case009[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantContended(k, 30*time.Second)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case010: contended acquisitions change nothing: not the lock data, and
// the next fence is still greater than the holder's.
func case010[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	before := c.lookupKey(k)
	if before == nil {
		c.Fatal("LookupByKey of a held key = nil")
	}
	for range 3 {
		c.wantContended(k, 60*time.Second)
	}
	after := c.lookupKey(k)
	if diff := cmp.Diff(before, after); diff != "" {
		c.Errorf("contended acquisitions changed the lock (-before +after):\n%s", diff)
	}
	c.wantRelease(r.LockID, true)
	r2 := c.mustAcquire(k, 30*time.Second)
	if r2.Fence <= r.Fence {
		c.Errorf("fence after 3 contended acquisitions = %v; want > %v", r2.Fence, r.Fence)
	}
	c.wantRelease(r2.LockID, true)
}

// case011: work on distinct keys runs concurrently. All three locks are held
// at the same time (a barrier proves it) and the whole run, with 50ms of
// work under each lock, fits in Timing.ParallelBudget. Run once with a 30s
// TTL and once with 5s (the e2e variant).
func case011[C driver.Capabilities](c *tc[C]) {
	for _, ttl := range []time.Duration{30 * time.Second, 5 * time.Second} {
		keys := []string{c.key("a:" + ttl.String()), c.key("b:" + ttl.String()), c.key("c:" + ttl.String())}
		b := newBarrier(len(keys))
		start := time.Now()
		gather(len(keys), func(i int) {
			r, err := c.d.Acquire(c.ctx, keys[i], ttl)
			if err != nil || !r.Acquired {
				c.Errorf("Acquire(%q) = %+v, %v; want acquired", keys[i], r, err)
				b.arrive(c.ctx) // do not keep the others waiting
				return
			}
			if !b.arrive(c.ctx) {
				c.Errorf("the three locks were never held at the same time")
			}
			_ = sleepCtx(c.ctx, 50*time.Millisecond)
			if rr, err := c.d.Release(c.ctx, "", r.LockID); err != nil || !rr.OK {
				c.Errorf("Release(%q) = %+v, %v; want OK", r.LockID, rr, err)
			}
		})
		if el := time.Since(start); el >= c.tm.ParallelBudget {
			c.Errorf("TTL %v: three 50ms sections on distinct keys took %v; want < %v", ttl, el, c.tm.ParallelBudget)
		}
	}
}

// case012: a released key can be acquired again.
func case012[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r.LockID, true)
	r2 := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r2.LockID, true)
}

// case013: waiters are refused while the holder lives and succeed after its
// TTL and tolerance have passed.
func case013[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	c.mustAcquire(k, c.tm.Short)
	gather(3, func(int) {
		r, err := c.d.Acquire(c.ctx, k, 30*time.Second)
		if err != nil || r.Acquired || r.Reason != driver.ReasonLocked {
			c.Errorf("contended Acquire = %+v, %v; want Reason %q and no error", r, err, driver.ReasonLocked)
		}
	})
	c.sleep(c.tm.Wait)
	r := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r.LockID, true)
}

// case014: five simultaneous single attempts; winners hold 10ms. At least
// one wins. (The catalogue also expects a loser on Redis and PostgreSQL,
// but a driver may legitimately serialise the attempts, so the suite does
// not require one.)
func case014[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	var wins, losses atomic.Int32
	start := time.Now()
	gather(5, func(int) {
		r, err := c.d.Acquire(c.ctx, k, c.tm.Short)
		switch {
		case err != nil:
			c.Errorf("Acquire: unexpected error: %v", err)
		case r.Acquired:
			wins.Add(1)
			_ = sleepCtx(c.ctx, 10*time.Millisecond)
			if rr, err := c.d.Release(c.ctx, "", r.LockID); err != nil || !rr.OK {
				c.Errorf("Release = %+v, %v; want OK", rr, err)
			}
		case r.Reason != driver.ReasonLocked:
			c.Errorf("Acquire = %+v; want Reason %q", r, driver.ReasonLocked)
		default:
			losses.Add(1)
		}
	})
	if w := wins.Load(); w < 1 || w > 5 || w+losses.Load() != 5 {
		c.Errorf("winners %d, losers %d; want 1..5 winners and 5 in total", w, losses.Load())
	}
	c.sleep(c.tm.Wait - time.Since(start))
	c.wantLocked(k, false)
}

// case015: contention is never an error, however many attempts collide.
func case015[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	gather(10, func(i int) {
		ttl := time.Duration(100+i) * time.Millisecond
		res, err := c.d.Acquire(c.ctx, k, ttl)
		if err != nil || res.Acquired || res.Reason != driver.ReasonLocked {
			c.Errorf("contended Acquire #%d = %+v, %v; want Reason %q and no error", i, res, err, driver.ReasonLocked)
		}
		if locked, err := c.d.IsLocked(c.ctx, k); err != nil || !locked {
			c.Errorf("IsLocked during contention = %v, %v; want true, nil", locked, err)
		}
	})
	c.wantRelease(r.LockID, true)
	// Free-for-all on a fresh key: every outcome is a result.
	k2 := c.key("free")
	var won atomic.Int32
	gather(10, func(i int) {
		res, err := c.d.Acquire(c.ctx, k2, 30*time.Second)
		if err != nil {
			c.Errorf("Acquire #%d: unexpected error: %v", i, err)
			return
		}
		if res.Acquired {
			won.Add(1)
		} else if res.Reason != driver.ReasonLocked {
			c.Errorf("Acquire #%d = %+v; want Reason %q", i, res, driver.ReasonLocked)
		}
	})
	if w := won.Load(); w != 1 {
		c.Errorf("%d of 10 simultaneous acquisitions of a free key with a 30s TTL won; want exactly 1", w)
	}
}
