package conformance

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// F. Lookup and diagnostics: cases 48–61.

// checkSanitised verifies the sanitized view of the lock r of key.
func (c *tc[C]) checkSanitised(what, key string, ttl time.Duration, r driver.AcquireResult, info *syncguard.LockInfo) {
	c.Helper()
	if info == nil {
		c.Fatalf("%s of a held lock = nil", what)
	}
	if !hashPattern.MatchString(info.KeyHash) || !hashPattern.MatchString(info.LockIDHash) {
		c.Errorf("%s: KeyHash %q, LockIDHash %q; want 24 lowercase hex digits each", what, info.KeyHash, info.LockIDHash)
	}
	if d := info.ExpiresAtMs - r.ExpiresAtMs; d <= -100 || d >= 100 {
		c.Errorf("%s: ExpiresAtMs %d differs from Acquire's %d by %dms; want < 100", what, info.ExpiresAtMs, r.ExpiresAtMs, d)
	}
	if info.AcquiredAtMs <= 0 || info.AcquiredAtMs != r.ExpiresAtMs-ttl.Milliseconds() {
		c.Errorf("%s: AcquiredAtMs = %d; want Acquire's authority-now %d (ExpiresAtMs − TTL)", what, info.AcquiredAtMs, r.ExpiresAtMs-ttl.Milliseconds())
	}
	if info.Fence != r.Fence {
		c.Errorf("%s: Fence = %v; want Acquire's %v", what, info.Fence, r.Fence)
	}
	s := fmt.Sprintf("%#v", *info)
	if strings.Contains(s, r.LockID) || strings.Contains(s, key) {
		c.Errorf("%s leaks the raw key or lock ID: %s", what, s)
	}
}

// case048: LookupByKey returns a sanitized view.
func case048[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.checkSanitised("LookupByKey", k, 30*time.Second, r, c.lookupKey(k))
	c.wantRelease(r.LockID, true)
}

// case049: LookupByID returns the same sanitized view.
func case049[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.checkSanitised("LookupByID", k, 30*time.Second, r, c.lookupID(r.LockID))
	c.wantRelease(r.LockID, true)
}

// case050: absent key and ID are nil results.
func case050[C driver.Capabilities](c *tc[C]) {
	if info := c.lookupKey(c.key("lookup:nonexistent:test")); info != nil {
		c.Errorf("LookupByKey(absent) = %+v; want nil", info)
	}
	if info := c.lookupID(foreignID("AAAAAAAAAAAAAAAAAAAAAA")); info != nil {
		c.Errorf("LookupByID(absent) = %+v; want nil", info)
	}
}

// case051: an expired lock is nil in both modes.
func case051[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, c.tm.Short)
	c.sleep(c.tm.LookupWait)
	if info := c.lookupKey(k); info != nil {
		c.Errorf("LookupByKey(expired) = %+v; want nil", info)
	}
	if info := c.lookupID(r.LockID); info != nil {
		c.Errorf("LookupByID(expired) = %+v; want nil", info)
	}
}

// case052: an expired short lock is nil by ID.
func case052[C driver.Capabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("k"), 100*time.Millisecond)
	c.sleep(1200 * time.Millisecond)
	if info := c.lookupID(r.LockID); info != nil {
		c.Errorf("LookupByID(expired) = %+v; want nil", info)
	}
}

// case053: an active lock by ID.
func case053[C driver.Capabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("k"), 2000*time.Millisecond)
	info := c.lookupID(r.LockID)
	if info == nil {
		c.Fatal("LookupByID(active) = nil")
	}
	now, skew := nowMs(), clockSkew.Milliseconds()
	if info.Fence != r.Fence {
		c.Errorf("Fence = %v; want %v", info.Fence, r.Fence)
	}
	if info.ExpiresAtMs <= now-skew {
		c.Errorf("ExpiresAtMs = %d; want > now %d (skew allowed %v)", info.ExpiresAtMs, now, clockSkew)
	}
	if info.AcquiredAtMs > now+skew {
		c.Errorf("AcquiredAtMs = %d; want ≤ now %d (skew allowed %v)", info.AcquiredAtMs, now, clockSkew)
	}
	c.wantRelease(r.LockID, true)
}

// case054: LookupByKey validates keys.
func case054[C driver.Capabilities](c *tc[C]) {
	_, err := c.d.LookupByKey(c.ctx, "")
	c.wantCode(`LookupByKey("")`, err, driver.InvalidArgument, "")
	_, err = c.d.LookupByKey(c.ctx, strings.Repeat("x", 600))
	c.wantCode("LookupByKey(600×x)", err, driver.InvalidArgument, "exceeds maximum length")
}

// case055: LookupByID validates lock IDs.
func case055[C driver.Capabilities](c *tc[C]) {
	for _, id := range []string{"", "invalid-lockid", "too-short", "this-is-way-too-long-for-valid-lockid"} {
		_, err := c.d.LookupByID(c.ctx, id)
		c.wantCode(fmt.Sprintf("LookupByID(%q)", id), err, driver.InvalidArgument, "invalid lockId format")
	}
}

// case056: concurrent lookups of a held key agree.
func case056[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	infos := make([]*driver.LockInfo, 3)
	gather(3, func(i int) {
		info, err := c.d.LookupByKey(c.ctx, k)
		if err != nil || info == nil {
			c.Errorf("LookupByKey = %+v, %v; want non-nil", info, err)
		}
		infos[i] = info
	})
	for i := 1; i < 3; i++ {
		if diff := cmp.Diff(infos[0], infos[i]); diff != "" {
			c.Errorf("concurrent lookups disagree (-first +other):\n%s", diff)
		}
	}
	c.wantRelease(r.LockID, true)
}

// case057: lookups of several keys return each key's own fence.
func case057[C driver.Capabilities](c *tc[C]) {
	var rs []driver.AcquireResult
	for i := range 3 {
		k := c.key(fmt.Sprint(i))
		r := c.mustAcquire(k, 30*time.Second)
		// Give the keys different fences.
		for range i {
			c.wantRelease(r.LockID, true)
			r = c.mustAcquire(k, 30*time.Second)
		}
		rs = append(rs, r)
	}
	for i, r := range rs {
		if info := c.lookupKey(c.key(fmt.Sprint(i))); info == nil || info.Fence != r.Fence {
			c.Errorf("LookupByKey(key %d) = %+v; want Fence %v", i, info, r.Fence)
		}
		c.wantRelease(r.LockID, true)
	}
}

// case058: the hashes are HashKey of the normalised key and of the lock ID.
func case058[C driver.Capabilities](c *tc[C]) {
	k := c.key("cafe\u0301:hash")
	nk, err := driver.NormalizeKey(k)
	if err != nil {
		c.Fatal(err)
	}
	r := c.mustAcquire(k, 30*time.Second)
	for _, m := range []struct {
		what string
		info *syncguard.LockInfo
	}{{"LookupByKey", c.lookupKey(k)}, {"LookupByID", c.lookupID(r.LockID)}} {
		if m.info == nil {
			c.Errorf("%s = nil", m.what)
			continue
		}
		if want := driver.HashKey(nk); m.info.KeyHash != want {
			c.Errorf("%s: KeyHash = %q; want HashKey(normalised key) = %q", m.what, m.info.KeyHash, want)
		}
		if want := driver.HashKey(r.LockID); m.info.LockIDHash != want {
			c.Errorf("%s: LockIDHash = %q; want HashKey(lockID) = %q", m.what, m.info.LockIDHash, want)
		}
	}
	c.wantRelease(r.LockID, true)
}

// case059: lookups are read-only. Five lookups leave a live lock's expiry
// alone; lookups of an expired lock neither resurrect nor delete it (the
// latter checked in storage by the nested subtest "storage", which needs
// [StorageInspector]).
func case059[C driver.Capabilities](c *tc[C]) {
	k := c.key("live")
	r := c.mustAcquire(k, 30*time.Second)
	for i := range 5 {
		var info *syncguard.LockInfo
		if i%2 == 0 {
			info = c.lookupKey(k)
		} else {
			info = c.lookupID(r.LockID)
		}
		if info == nil || info.ExpiresAtMs != r.ExpiresAtMs {
			c.Errorf("lookup %d = %+v; want ExpiresAtMs unchanged at %d", i, info, r.ExpiresAtMs)
		}
	}
	c.wantRelease(r.LockID, true)

	ke := c.key("expired")
	re := c.mustAcquire(ke, 100*time.Millisecond)
	c.sleep(100*time.Millisecond + driver.Tolerance + 200*time.Millisecond)
	c.sub("storage", func(s *tc[C]) {
		si := harnessAs[StorageInspector](s, "StorageInspector")
		before, err := si.LockDataExists(s.ctx, ke)
		s.skipUnsupported("StorageInspector", err)
		if err != nil {
			s.Fatalf("LockDataExists: %v", err)
		}
		if info := s.lookupKey(ke); info != nil {
			s.Errorf("LookupByKey(expired) = %+v; want nil", info)
		}
		if info := s.lookupID(re.LockID); info != nil {
			s.Errorf("LookupByID(expired) = %+v; want nil", info)
		}
		after, err := si.LockDataExists(s.ctx, ke)
		if err != nil {
			s.Fatalf("LockDataExists: %v", err)
		}
		if before && !after {
			s.Error("lookups of an expired lock deleted its data; lookups must be read-only")
		}
		if !before {
			s.Log("the expired lock's data was already gone before the lookups (physical expiry); deletion not judged")
		}
	})
	for range 2 {
		if info := c.lookupKey(ke); info != nil {
			c.Errorf("LookupByKey(expired) = %+v; want nil", info)
		}
		if info := c.lookupID(re.LockID); info != nil {
			c.Errorf("LookupByID(expired) = %+v; want nil", info)
		}
	}
	c.wantLocked(ke, false)
	c.wantExtend(re.LockID, 30*time.Second, false)
}

// case060: the driver's lookups return the raw normalised key and lock ID
// (the Guard hashes them, case 048); after release both are nil.
func case060[C driver.Capabilities](c *tc[C]) {
	k := c.key("cafe\u0301:raw")
	nk, _ := driver.NormalizeKey(k)
	r := c.mustAcquire(k, 30*time.Second)
	want := &driver.LockInfo{Key: nk, LockID: r.LockID, Fence: r.Fence, ExpiresAtMs: r.ExpiresAtMs, AcquiredAtMs: r.ExpiresAtMs - 30_000}
	gk, err := c.d.LookupByKey(c.ctx, nk)
	if err != nil {
		c.Fatalf("LookupByKey: %v", err)
	}
	if diff := cmp.Diff(want, gk); diff != "" {
		c.Errorf("LookupByKey (-want +got):\n%s", diff)
	}
	gi, err := c.d.LookupByID(c.ctx, r.LockID)
	if err != nil {
		c.Fatalf("LookupByID: %v", err)
	}
	if diff := cmp.Diff(want, gi); diff != "" {
		c.Errorf("LookupByID (-want +got):\n%s", diff)
	}
	c.wantRelease(r.LockID, true)
	if gk, err := c.d.LookupByKey(c.ctx, nk); err != nil || gk != nil {
		c.Errorf("LookupByKey after release = %+v, %v; want nil, nil", gk, err)
	}
	if gi, err := c.d.LookupByID(c.ctx, r.LockID); err != nil || gi != nil {
		c.Errorf("LookupByID after release = %+v, %v; want nil, nil", gi, err)
	}
}

// case061: Owns is true while held and false after release.
func case061[C driver.Capabilities](c *tc[C]) {
	k := c.key("cafe\u0301:owns")
	r := c.mustAcquire(k, 30*time.Second)
	if ok, err := c.guard().Owns(c.ctx, r.LockID); err != nil || !ok {
		c.Errorf("Owns while held = %v, %v; want true", ok, err)
	}
	c.wantRelease(r.LockID, true)
	if ok, err := c.guard().Owns(c.ctx, r.LockID); err != nil || ok {
		c.Errorf("Owns after release = %v, %v; want false", ok, err)
	}
}
