package conformance

import (
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// D. Ownership: cases 29–35.

// case029: a foreign ID cannot release the lock.
func case029[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(foreignID("abcdefghijklmnopqrstuv"), false)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case030: a foreign ID cannot extend the lock.
func case030[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantExtend(foreignID("eHh4eHh4eHh4eHh4eHh4eA"), 60*time.Second, false)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case031: releasing one key's lock leaves another key's lock alone.
func case031[C driver.Capabilities](c *tc[C]) {
	k1, k2 := c.key("k1"), c.key("k2")
	r1 := c.mustAcquire(k1, 30*time.Second)
	r2 := c.mustAcquire(k2, 30*time.Second)
	c.wantRelease(r2.LockID, true)
	c.wantLocked(k1, true)
	c.wantLocked(k2, false)
	c.wantRelease(r1.LockID, true)
}

// case032: after its lock expired and was taken over, the stale holder can
// neither extend nor release, nor see its lock, and the new holder is
// untouched.
func case032[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r1 := c.mustAcquire(k, c.tm.Short)
	c.sleep(c.tm.LookupWait)
	r2 := c.mustAcquire(k, 30*time.Second)
	before := c.lookupID(r2.LockID)
	c.wantExtend(r1.LockID, 30*time.Second, false)
	c.wantLocked(k, true)
	c.wantRelease(r1.LockID, false)
	if info := c.lookupID(r1.LockID); info != nil {
		c.Errorf("LookupByID(stale lockID) = %+v; want nil", info)
	}
	after := c.lookupID(r2.LockID)
	if before == nil || after == nil {
		c.Fatalf("LookupByID(new holder) = %+v then %+v; want non-nil", before, after)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		c.Errorf("the stale holder's calls changed the new lock (-before +after):\n%s", diff)
	}
	if after.Fence != r2.Fence {
		c.Errorf("new holder's fence = %v; want %v", after.Fence, r2.Fence)
	}
	c.wantRelease(r2.LockID, true)
}

// case033: concurrent releases with a foreign ID all fail.
func case033[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	bad := foreignID("wrongLockIdValue1234ab")
	gather(3, func(int) {
		res, err := c.d.Release(c.ctx, "", bad)
		if err != nil || res.OK {
			c.Errorf("Release(foreign) = %+v, %v; want not OK, no error", res, err)
		}
	})
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case034: a foreign release after an extension fails.
func case034[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantExtend(r.LockID, 40*time.Second, true)
	c.wantRelease(foreignID("afterExtendWrongLock12"), false)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case035: of ten concurrent releases of one lock exactly one succeeds.
func case035[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	var oks atomic.Int32
	gather(10, func(int) {
		res, err := c.d.Release(c.ctx, "", r.LockID)
		if err != nil {
			c.Errorf("Release: unexpected error: %v", err)
		}
		if res.OK {
			oks.Add(1)
		}
	})
	if n := oks.Load(); n != 1 {
		c.Errorf("%d of 10 concurrent releases of one lock reported OK; want exactly 1", n)
	}
	c.wantLocked(k, false)
}
