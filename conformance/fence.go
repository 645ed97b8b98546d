package conformance

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// E. Fence monotonicity: cases 36–45.

// sub runs fn as a nested subtest sharing the case's context and keys.
func (c *tc[C]) sub(name string, fn func(s *tc[C])) bool {
	return c.Run(name, func(t *testing.T) {
		s := *c
		s.T = t
		fn(&s)
	})
}

// case036: fence format: 15 digits, positive, parses back.
func case036[C driver.Capabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("k"), 30*time.Second)
	s := r.Fence.String()
	if !fencePattern.MatchString(s) {
		c.Errorf("Fence %q does not match %s", s, fencePattern)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || syncguard.Fence(n) != r.Fence {
		c.Errorf("strconv.ParseUint(%q) = %d, %v; want %d > 0", s, n, err, uint64(r.Fence))
	}
	if f, err := driver.ParseFence(s); err != nil || f != r.Fence {
		c.Errorf("ParseFence(%q) = %v, %v; want %v", s, f, err, r.Fence)
	}
	c.wantRelease(r.LockID, true)
}

// case037: five cycles on one key give increasing fences, as strings and as
// integers.
func case037[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	var prev syncguard.Fence
	for i := range 5 {
		r := c.mustAcquire(k, 30*time.Second)
		if i > 0 && (r.Fence <= prev || r.Fence.String() <= prev.String()) {
			c.Errorf("cycle %d: fence %v; want > %v (numerically and as a string)", i, r.Fence, prev)
		}
		prev = r.Fence
		c.wantRelease(r.LockID, true)
	}
}

// case038: each key's fence increases.
func case038[C driver.Capabilities](c *tc[C]) {
	ka, kb := c.key("a"), c.key("b")
	a1 := c.mustAcquire(ka, 30*time.Second)
	b1 := c.mustAcquire(kb, 30*time.Second)
	c.wantRelease(a1.LockID, true)
	c.wantRelease(b1.LockID, true)
	a2 := c.mustAcquire(ka, 30*time.Second)
	b2 := c.mustAcquire(kb, 30*time.Second)
	if a2.Fence <= a1.Fence || b2.Fence <= b1.Fence {
		c.Errorf("fences A %v→%v, B %v→%v; want each to increase", a1.Fence, a2.Fence, b1.Fence, b2.Fence)
	}
	c.wantRelease(a2.LockID, true)
	c.wantRelease(b2.LockID, true)
}

// case039: cycles on one key do not move another key's fence past the time
// floor: B's next fence is greater than its last and at the floor.
func case039[C driver.Capabilities](c *tc[C]) {
	ka, kb := c.key("a"), c.key("b")
	lo := c.floorNow(-driver.Tolerance)
	b1 := c.mustAcquire(kb, 30*time.Second)
	c.wantRelease(b1.LockID, true)
	for range 3 {
		r := c.mustAcquire(ka, 30*time.Second)
		c.wantRelease(r.LockID, true)
	}
	b2 := c.mustAcquire(kb, 30*time.Second)
	if b2.Fence <= b1.Fence {
		c.Errorf("key B fence after 3 cycles on key A = %v; want > %v", b2.Fence, b1.Fence)
	}
	c.wantFloored("key B fence after 3 cycles on key A", b2.Fence, lo)
	c.wantRelease(b2.LockID, true)
}

// case040: the counter survives release and the passing of the TTL.
func case040[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r1 := c.mustAcquire(k, 1000*time.Millisecond)
	c.wantRelease(r1.LockID, true)
	c.sleep(1500 * time.Millisecond)
	r2 := c.mustAcquire(k, 30*time.Second)
	if r2.Fence <= r1.Fence {
		c.Errorf("fence after release and expiry = %v; want > %v", r2.Fence, r1.Fence)
	}
	c.wantRelease(r2.LockID, true)
}

// case041: as case 40 with an IsLocked in between.
func case041[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r1 := c.mustAcquire(k, 1000*time.Millisecond)
	c.wantRelease(r1.LockID, true)
	c.sleep(1500 * time.Millisecond)
	c.wantLocked(k, false)
	r2 := c.mustAcquire(k, 30*time.Second)
	if r2.Fence <= r1.Fence {
		c.Errorf("fence after cleanup window = %v; want > %v", r2.Fence, r1.Fence)
	}
	c.wantRelease(r2.LockID, true)
}

// case041Fix: cleanup in IsLocked really runs ([CleanupHarness]): a lock
// left to expire is deleted by IsLocked once CleanupGuardMs past its expiry,
// its fence counter stays within its margin ([StorageInspector], nested
// subtest "storage"),
// and the next acquisition gets a larger fence. All lock operations use
// DriverWithCleanup, except a control lock on Driver (cleanup off), whose
// data IsLocked must leave alone.
func case041Fix[C driver.Capabilities](c *tc[C]) {
	ch := harnessAs[CleanupHarness[C]](c, "CleanupHarness")
	d := ch.DriverWithCleanup()
	if d == nil {
		c.Skip("CleanupHarness.DriverWithCleanup returned nil")
	}
	k := c.key("k")
	acquiredAt := time.Now()
	r1, err := d.Acquire(c.ctx, k, 1000*time.Millisecond)
	if err != nil || !r1.Acquired {
		c.Fatalf("Acquire = %+v, %v; want acquired", r1, err)
	}
	// Control: a lock of the plain driver (cleanup off), expired as long.
	kOff := c.key("cleanup-off")
	c.mustAcquire(kOff, 1000*time.Millisecond)
	c.sleep(1000*time.Millisecond + driver.CleanupGuardMs*time.Millisecond + 300*time.Millisecond)
	if locked, err := d.IsLocked(c.ctx, k); err != nil || locked {
		c.Fatalf("IsLocked past expiry + cleanup guard = %v, %v; want false", locked, err)
	}
	c.sub("storage", func(s *tc[C]) {
		si := harnessAs[StorageInspector](s, "StorageInspector")
		offBefore, err := si.LockDataExists(s.ctx, kOff)
		s.skipUnsupported("StorageInspector", err)
		if err != nil {
			s.Fatalf("LockDataExists: %v", err)
		}
		s.wantLocked(kOff, false)
		deadline := time.Now().Add(2 * time.Second)
		for {
			exists, err := si.LockDataExists(s.ctx, k)
			s.skipUnsupported("StorageInspector", err)
			if err != nil {
				s.Fatalf("LockDataExists: %v", err)
			}
			if !exists {
				break
			}
			if time.Now().After(deadline) {
				s.Fatal("lock data still stored 2s after IsLocked with cleanup found it expired by > CleanupGuardMs")
			}
			s.sleep(50 * time.Millisecond)
		}
		// The counter is kept until the floor has passed its fence by
		// FenceMarginMs; after that it may go (the next fence is the floor).
		exists, err := si.FenceCounterExists(s.ctx, k)
		if within := time.Since(acquiredAt) < time.Duration(driver.FenceMarginMs-500)*time.Millisecond; err != nil || (within && !exists) {
			s.Errorf("FenceCounterExists after cleanup, within the fence margin = %v, %v; want true (cleanup keeps the counter)", exists, err)
		}
		// With cleanup off (the default), IsLocked is read-only, also in
		// the background. (Data already gone before it, through physical
		// expiry, is not judged.)
		s.sleep(200 * time.Millisecond)
		if offAfter, err := si.LockDataExists(s.ctx, kOff); err != nil || offBefore && !offAfter {
			s.Errorf("lock data after IsLocked with cleanup off = %v, %v (was %v); want it kept", offAfter, err, offBefore)
		}
	})
	r2, err := d.Acquire(c.ctx, k, 30*time.Second)
	if err != nil || !r2.Acquired {
		c.Fatalf("Acquire after cleanup = %+v, %v; want acquired", r2, err)
	}
	if r2.Fence <= r1.Fence {
		c.Errorf("fence after cleanup = %v; want > %v", r2.Fence, r1.Fence)
	}
	if rr, err := d.Release(c.ctx, "", r2.LockID); err != nil || !rr.OK {
		c.Errorf("Release = %+v, %v; want OK", rr, err)
	}
}

// case042: three release/wait/IsLocked cycles give strictly increasing
// fences.
func case042[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	var prev syncguard.Fence
	for i := range 3 {
		r := c.mustAcquire(k, 1000*time.Millisecond)
		if r.Fence <= prev {
			c.Errorf("cycle %d: fence %v; want > %v", i, r.Fence, prev)
		}
		prev = r.Fence
		c.wantRelease(r.LockID, true)
		c.sleep(1500 * time.Millisecond)
		c.wantLocked(k, false)
	}
}

// case043: the first fence of a never-used key is the time floor: the
// backend's clock in 10 µs units since 2025 (driver.FenceFloor), within
// the tolerance of the test's clock.
func case043[C driver.Capabilities](c *tc[C]) {
	lo := c.floorNow(-driver.Tolerance)
	r := c.mustAcquire(c.key("fresh"), 30*time.Second)
	c.wantFloored("first fence of a new key", r.Fence, lo)
	c.wantRelease(r.LockID, true)
}

// case044: 20 simultaneous first acquisitions of a key: one wins with the
// time floor; then 20 cycles give strictly increasing fences.
func case044[C driver.Capabilities](c *tc[C]) {
	k := c.key("fresh")
	lo := c.floorNow(-driver.Tolerance)
	var (
		mu   sync.Mutex
		wins []driver.AcquireResult
	)
	gather(20, func(int) {
		r, err := c.d.Acquire(c.ctx, k, 30*time.Second)
		if err != nil {
			c.Errorf("Acquire: unexpected error: %v", err)
			return
		}
		if r.Acquired {
			mu.Lock()
			wins = append(wins, r)
			mu.Unlock()
		}
	})
	if len(wins) != 1 {
		c.Fatalf("%d of 20 simultaneous acquisitions won; want exactly 1", len(wins))
	}
	c.wantFloored("winner's fence", wins[0].Fence, lo)
	c.wantRelease(wins[0].LockID, true)
	prev := wins[0].Fence
	for i := range 20 {
		r := c.mustAcquire(k, 30*time.Second)
		if r.Fence <= prev {
			c.Errorf("cycle %d: fence %v; want > %v", i, r.Fence, prev)
		}
		prev = r.Fence
		c.wantRelease(r.LockID, true)
	}
}

// case045: overflow ([FenceSetter]). With the counter at FenceMax − 1 the
// next fence is FenceMax; the one after fails with Internal and leaves no
// lock. With the counter at FenceWarn the next fence is FenceWarn + 1.
// (Both acquisitions past FenceWarn must log a warning through the driver's
// logger; the suite cannot see a driver's logger, so drivers check that in
// their own tests.)
func case045[C driver.Capabilities](c *tc[C]) {
	fs := harnessAs[FenceSetter](c, "FenceSetter")
	k := c.key("overflow")
	err := fs.SetFence(c.ctx, k, int64(driver.FenceMax)-1)
	c.skipUnsupported("FenceSetter", err)
	if err != nil {
		c.Fatalf("SetFence: %v", err)
	}
	r := c.mustAcquire(k, 30*time.Second)
	if r.Fence != driver.FenceMax {
		c.Errorf("fence after preset %v = %v; want %v", driver.FenceMax-1, r.Fence, driver.FenceMax)
	}
	c.wantRelease(r.LockID, true)
	res, err := c.d.Acquire(c.ctx, k, 30*time.Second)
	c.wantCode("Acquire past FenceMax", err, driver.Internal, "")
	if res.Acquired {
		c.Errorf("Acquire past FenceMax = %+v; want not acquired", res)
	}
	c.wantLocked(k, false)
	if info := c.lookupKey(k); info != nil {
		c.Errorf("LookupByKey after the overflow = %+v; want nil (no orphaned lock)", info)
	}

	k2 := c.key("warn")
	if err := fs.SetFence(c.ctx, k2, int64(driver.FenceWarn)); err != nil {
		c.Fatalf("SetFence: %v", err)
	}
	r2 := c.mustAcquire(k2, 30*time.Second)
	if r2.Fence != driver.FenceWarn+1 {
		c.Errorf("fence after preset %v = %v; want %v", driver.FenceWarn, r2.Fence, driver.FenceWarn+1)
	}
	c.wantRelease(r2.LockID, true)
}

// F01: a key whose fence counter is lost ([FenceSetter] puts it back to 0,
// as a restart without persistence, a failover that lost unreplicated
// writes, or a sweep would) still gets a fence greater than every earlier
// one, from the time floor; and a counter ahead of the floor is continued
// from, not replaced by the floor.
func f01[C driver.Capabilities](c *tc[C]) {
	fs := harnessAs[FenceSetter](c, "FenceSetter")
	k := c.key("floor")
	var last syncguard.Fence
	for range 5 {
		r := c.mustAcquire(k, 30*time.Second)
		last = r.Fence
		c.wantRelease(r.LockID, true)
	}
	// Five quick cycles may run the counter a few 10 µs units ahead of the
	// floor; a real loss (a restart, a failover) takes far longer than
	// that. Let the floor pass the last fence first.
	time.Sleep(2 * time.Millisecond)
	err := fs.SetFence(c.ctx, k, 0)
	c.skipUnsupported("FenceSetter", err)
	if err != nil {
		c.Fatalf("SetFence: %v", err)
	}
	for i := range 2 {
		r := c.mustAcquire(k, 30*time.Second)
		if r.Fence <= last {
			c.Errorf("acquisition %d after the counter was lost: fence %v; want > %v", i, r.Fence, last)
		}
		last = r.Fence
		c.wantRelease(r.LockID, true)
	}
	ahead := c.floorNow(time.Hour)
	if err := fs.SetFence(c.ctx, k, int64(ahead)); err != nil {
		c.Fatalf("SetFence: %v", err)
	}
	r := c.mustAcquire(k, 30*time.Second)
	if r.Fence != ahead+1 {
		c.Errorf("fence after a counter an hour ahead of the floor (%v) = %v; want %v", ahead, r.Fence, ahead+1)
	}
	c.wantRelease(r.LockID, true)
}
