package conformance

import (
	"strconv"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// A. Lifecycle: cases 1–8.

// case001: acquire, IsLocked, release, IsLocked.
func case001[C driver.Capabilities](c *tc[C]) {
	k := c.key("lifecycle:basic:test")
	r := c.mustAcquire(k, 30*time.Second)
	if now := nowMs(); r.ExpiresAtMs <= now {
		c.Errorf("ExpiresAtMs = %d; want > now (%d)", r.ExpiresAtMs, now)
	}
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
	c.wantLocked(k, false)
}

// case002: the fence of an acquisition is 15 digits and positive.
func case002[C driver.Capabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("fence"), 30*time.Second)
	s := r.Fence.String()
	if !fencePattern.MatchString(s) {
		c.Errorf("Fence %q does not match %s", s, fencePattern)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err != nil || n <= 0 {
		c.Errorf("Fence %q parses to %d, %v; want > 0", s, n, err)
	}
	c.wantRelease(r.LockID, true)
}

// case003: three keys acquired and released concurrently.
func case003[C driver.Capabilities](c *tc[C]) {
	keys := []string{c.key("a"), c.key("b"), c.key("c")}
	res := make([]driver.AcquireResult, len(keys))
	gather(len(keys), func(i int) {
		r, err := c.d.Acquire(c.ctx, keys[i], 20*time.Second)
		if err != nil || !r.Acquired {
			c.Errorf("Acquire(%q) = %+v, %v; want acquired", keys[i], r, err)
		}
		res[i] = r
	})
	if c.Failed() {
		return
	}
	seen := map[string]bool{}
	for i, r := range res {
		if seen[r.LockID] {
			c.Errorf("LockID %q returned twice", r.LockID)
		}
		seen[r.LockID] = true
		c.wantLocked(keys[i], true)
	}
	gather(len(keys), func(i int) {
		r, err := c.d.Release(c.ctx, "", res[i].LockID)
		if err != nil || !r.OK {
			c.Errorf("Release(%q) = %+v, %v; want OK", res[i].LockID, r, err)
		}
	})
	for _, k := range keys {
		c.wantLocked(k, false)
	}
}

// case004: a second release of one lock reports false without error.
func case004[C driver.Capabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("k"), 30*time.Second)
	c.wantRelease(r.LockID, true)
	c.wantRelease(r.LockID, false)
}

// case005: releasing an ID that was never issued is a false result.
func case005[C driver.Capabilities](c *tc[C]) {
	c.wantRelease(foreignID("AAAAAAAAAAAAAAAAAAAAAA"), false)
}

// case006: ten acquire/release cycles on one key.
func case006[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	for range 10 {
		r := c.mustAcquire(k, 30*time.Second)
		c.wantLocked(k, true)
		c.wantRelease(r.LockID, true)
		c.wantLocked(k, false)
	}
}

// case007: the owner may extend and release.
func case007[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.wantExtend(r.LockID, 40*time.Second, true)
	c.wantRelease(r.LockID, true)
	c.wantLocked(k, false)
}

// case008: the composed and decomposed forms of a key address one lock.
func case008[C driver.Capabilities](c *tc[C]) {
	decomposed := c.key("cafe\u0301")
	composed := c.key("caf\u00e9")
	r := c.mustAcquire(decomposed, 30*time.Second)
	c.wantLocked(composed, true)
	c.wantContended(composed, 30*time.Second)
	info := c.lookupKey(composed)
	if info == nil {
		c.Fatalf("LookupByKey(composed) = nil; want the lock acquired under the decomposed form")
	}
	if want := driver.HashKey(r.LockID); info.LockIDHash != want {
		c.Errorf("LookupByKey(composed).LockIDHash = %q; want HashKey(lockID) = %q", info.LockIDHash, want)
	}
	if want := driver.HashKey(composed); info.KeyHash != want {
		c.Errorf("LookupByKey(composed).KeyHash = %q; want %q", info.KeyHash, want)
	}
	c.wantRelease(r.LockID, true)
	c.wantLocked(decomposed, false)
}
