package conformance

import (
	"fmt"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// C. Expiry, tolerance and extend: cases 16–26.

// case016: a short lock expires by itself.
func case016[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	c.mustAcquire(k, c.tm.Short)
	c.wantLocked(k, true)
	c.sleep(c.tm.Wait)
	c.wantLocked(k, false)
	r := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r.LockID, true)
}

// case017: an extension keeps the lock past its original expiry.
func case017[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 500*time.Millisecond)
	c.sleep(300 * time.Millisecond)
	e := c.wantExtend(r.LockID, 1000*time.Millisecond, true)
	if now := nowMs(); e.ExpiresAtMs <= now-clockSkew.Milliseconds() {
		c.Errorf("Extend: ExpiresAtMs = %d; want > now (%d, skew allowed %v)", e.ExpiresAtMs, now, clockSkew)
	}
	if e.ExpiresAtMs <= r.ExpiresAtMs {
		c.Errorf("Extend: ExpiresAtMs = %d; want > original %d", e.ExpiresAtMs, r.ExpiresAtMs)
	}
	c.sleep(300 * time.Millisecond)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case018: the same with shorter times.
func case018[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 200*time.Millisecond)
	c.sleep(100 * time.Millisecond)
	c.wantExtend(r.LockID, 500*time.Millisecond, true)
	c.sleep(150 * time.Millisecond)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case019: an expired lock cannot be extended back to life.
func case019[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, c.tm.Short)
	c.sleep(c.tm.Wait)
	c.wantExtend(r.LockID, 1000*time.Millisecond, false)
	c.wantLocked(k, false)
}

// case020: an expired key is re-acquirable at once (cleanup disabled).
func case020[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	c.mustAcquire(k, c.tm.Short)
	c.sleep(c.tm.Wait)
	c.wantLocked(k, false)
	r := c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r.LockID, true)
}

// case021: repeated extensions.
func case021[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 2000*time.Millisecond)
	c.sleep(500 * time.Millisecond)
	c.wantExtend(r.LockID, 2000*time.Millisecond, true)
	c.sleep(500 * time.Millisecond)
	c.wantExtend(r.LockID, 2000*time.Millisecond, true)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case022: a long lock after an expired short one.
func case022[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	c.mustAcquire(k, c.tm.Short)
	c.sleep(c.tm.Wait)
	c.wantLocked(k, false)
	r := c.mustAcquire(k, 30*time.Second)
	c.sleep(100 * time.Millisecond)
	c.wantLocked(k, true)
	c.wantRelease(r.LockID, true)
}

// case023: a lock is free once TTL + tolerance have passed.
func case023[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	c.mustAcquire(k, 500*time.Millisecond)
	c.sleep(500*time.Millisecond + driver.Tolerance + 100*time.Millisecond)
	c.wantLocked(k, false)
}

// case024: Extend sets the expiry to authority-now + ttl, even when that
// shortens the lock.
func case024[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	start := time.Now()
	r := c.mustAcquire(k, 30*time.Second)
	e := c.wantExtend(r.LockID, 5*time.Second, true)
	elapsed := time.Since(start)
	if e.ExpiresAtMs >= r.ExpiresAtMs {
		c.Errorf("Extend(5s) of a 30s lock: ExpiresAtMs = %d; want < %d (reset, not add)", e.ExpiresAtMs, r.ExpiresAtMs)
	}
	// The authority's time at acquisition is r.ExpiresAtMs − 30s; the
	// extension happened at most `elapsed` later on that clock.
	acquiredAt := r.ExpiresAtMs - 30_000
	lo, hi := acquiredAt+5000, acquiredAt+5000+elapsed.Milliseconds()+20
	if e.ExpiresAtMs < lo || e.ExpiresAtMs > hi {
		c.Errorf("Extend(5s): ExpiresAtMs = %d; want authority-now + 5000 in [%d, %d]", e.ExpiresAtMs, lo, hi)
	}
	if info := c.lookupKey(k); info == nil || info.ExpiresAtMs != e.ExpiresAtMs {
		c.Errorf("LookupByKey after Extend = %+v; want ExpiresAtMs %d", info, e.ExpiresAtMs)
	}
	c.wantRelease(r.LockID, true)
}

// case025: lookups report exactly the expiry the driver returned.
func case025[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	check := func(when string, want int64) {
		c.Helper()
		if info := c.lookupKey(k); info == nil || info.ExpiresAtMs != want {
			c.Errorf("LookupByKey after %s = %+v; want ExpiresAtMs exactly %d", when, info, want)
		}
		if info := c.lookupID(r.LockID); info == nil || info.ExpiresAtMs != want {
			c.Errorf("LookupByID after %s = %+v; want ExpiresAtMs exactly %d", when, info, want)
		}
	}
	check("Acquire", r.ExpiresAtMs)
	e := c.wantExtend(r.LockID, 45*time.Second, true)
	check("Extend", e.ExpiresAtMs)
	c.wantRelease(r.LockID, true)
}

// case026: the tolerance boundary, with lock data written directly
// ([RawLockWriter]). A lock whose expiry lies less than Tolerance in the past
// is live (IsLocked true, acquisition contended, Extend OK); one whose
// expiry lies exactly Tolerance in the past is not.
//
// Time runs between the write and the check, so the live side writes
// authority-now − (Tolerance − 50ms) and only judges attempts whose write
// and check together took less than 45ms on the test's clock (it retries
// otherwise). The expired side writes authority-now − Tolerance, which can
// only get older.
func case026[C driver.Capabilities](c *tc[C]) {
	w := harnessAs[RawLockWriter](c, "RawLockWriter")
	const margin = 50 * time.Millisecond
	write := func(key string, offset time.Duration) string {
		c.Helper()
		id := driver.NewLockID()
		if m, ok := any(c.h).(LockIDMinter); ok {
			id = m.LockIDFor(key)
		}
		err := w.WriteRawLock(c.ctx, key, id, 7, offset)
		c.skipUnsupported("RawLockWriter", err)
		if err != nil {
			c.Fatalf("WriteRawLock(%q, %v): %v", key, offset, err)
		}
		return id
	}
	live := func(what string, check func(key, id string) (bool, string)) {
		c.Helper()
		for attempt := range 5 {
			k := c.key(fmt.Sprintf("live:%s:%d", what, attempt))
			start := time.Now()
			id := write(k, -(driver.Tolerance - margin))
			ok, detail := check(k, id)
			if time.Since(start) >= margin-5*time.Millisecond {
				continue // too slow to tell: the lock may really have expired
			}
			if !ok {
				c.Errorf("lock expired %v ago (inside the tolerance): %s: %s", driver.Tolerance-margin, what, detail)
			}
			return
		}
		c.Logf("%s: every attempt took longer than %v; not judged", what, margin)
	}
	live("IsLocked", func(k, _ string) (bool, string) {
		v := c.isLocked(k)
		return v, fmt.Sprintf("IsLocked = %v; want true", v)
	})
	live("Acquire", func(k, _ string) (bool, string) {
		r := c.acquire(k, 30*time.Second)
		return !r.Acquired, fmt.Sprintf("Acquire = %+v; want contended", r)
	})
	live("Extend", func(_, id string) (bool, string) {
		e := c.extend(id, 30*time.Second)
		return e.OK, fmt.Sprintf("Extend = %+v; want OK", e)
	})

	// Exactly Tolerance past expiry: not live.
	k1 := c.key("expired:IsLocked")
	write(k1, -driver.Tolerance)
	if c.isLocked(k1) {
		c.Errorf("IsLocked of a lock expired %v ago = true; want false", driver.Tolerance)
	}
	k2 := c.key("expired:Acquire")
	write(k2, -driver.Tolerance)
	r := c.acquire(k2, 30*time.Second)
	if !r.Acquired {
		c.Errorf("Acquire over a lock expired %v ago = %+v; want acquired", driver.Tolerance, r)
	} else {
		c.wantRelease(r.LockID, true)
	}
	k3 := c.key("expired:Extend")
	id3 := write(k3, -driver.Tolerance)
	if e := c.extend(id3, 30*time.Second); e.OK {
		c.Errorf("Extend of a lock expired %v ago = %+v; want not OK", driver.Tolerance, e)
	}
	c.wantLocked(k3, false)
}
