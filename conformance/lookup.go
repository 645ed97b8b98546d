package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
)

// F. Lookup and diagnostics: cases 48–61.

// checkSanitised verifies the sanitized view of the lock r of key.
func (c *tc[C]) checkSanitised(what, key string, ttl time.Duration, r syncguard.AcquireResult, info *syncguard.LockInfo) {
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
func case048[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.checkSanitised("LookupByKey", k, 30*time.Second, r, c.lookupKey(k))
	c.wantRelease(r.LockID, true)
}

// case049: LookupByID returns the same sanitized view.
func case049[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	c.checkSanitised("LookupByID", k, 30*time.Second, r, c.lookupID(r.LockID))
	c.wantRelease(r.LockID, true)
}

// case050: absent key and ID are nil results.
func case050[C syncguard.FencedCapabilities](c *tc[C]) {
	if info := c.lookupKey(c.key("lookup:nonexistent:test")); info != nil {
		c.Errorf("LookupByKey(absent) = %+v; want nil", info)
	}
	if info := c.lookupID(foreignID("AAAAAAAAAAAAAAAAAAAAAA")); info != nil {
		c.Errorf("LookupByID(absent) = %+v; want nil", info)
	}
}

// case051: an expired lock is nil in both modes.
func case051[C syncguard.FencedCapabilities](c *tc[C]) {
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
func case052[C syncguard.FencedCapabilities](c *tc[C]) {
	r := c.mustAcquire(c.key("k"), 100*time.Millisecond)
	c.sleep(1200 * time.Millisecond)
	if info := c.lookupID(r.LockID); info != nil {
		c.Errorf("LookupByID(expired) = %+v; want nil", info)
	}
}

// case053: an active lock by ID.
func case053[C syncguard.FencedCapabilities](c *tc[C]) {
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
func case054[C syncguard.FencedCapabilities](c *tc[C]) {
	_, err := c.d.LookupByKey(c.ctx, "")
	c.wantCode(`LookupByKey("")`, err, syncguard.InvalidArgument, "")
	_, err = c.d.LookupByKey(c.ctx, strings.Repeat("x", 600))
	c.wantCode("LookupByKey(600×x)", err, syncguard.InvalidArgument, "exceeds maximum length")
}

// case055: LookupByID validates lock IDs.
func case055[C syncguard.FencedCapabilities](c *tc[C]) {
	for _, id := range []string{"", "invalid-lockid", "too-short", "this-is-way-too-long-for-valid-lockid"} {
		_, err := c.d.LookupByID(c.ctx, id)
		c.wantCode(fmt.Sprintf("LookupByID(%q)", id), err, syncguard.InvalidArgument, "Invalid lockId format")
	}
}

// case056: concurrent lookups of a held key agree.
func case056[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	infos := make([]*syncguard.LockInfo, 3)
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
func case057[C syncguard.FencedCapabilities](c *tc[C]) {
	var rs []syncguard.AcquireResult
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
func case058[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("cafe\u0301:hash")
	nk, err := syncguard.NormalizeKey(k)
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
		if want := syncguard.HashKey(nk); m.info.KeyHash != want {
			c.Errorf("%s: KeyHash = %q; want HashKey(normalised key) = %q", m.what, m.info.KeyHash, want)
		}
		if want := syncguard.HashKey(r.LockID); m.info.LockIDHash != want {
			c.Errorf("%s: LockIDHash = %q; want HashKey(lockID) = %q", m.what, m.info.LockIDHash, want)
		}
	}
	c.wantRelease(r.LockID, true)
}

// case059: lookups are read-only. Five lookups leave a live lock's expiry
// alone; lookups of an expired lock neither resurrect nor delete it (the
// latter checked in storage by the nested subtest "storage", which needs
// [StorageInspector]).
func case059[C syncguard.FencedCapabilities](c *tc[C]) {
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
	c.sleep(100*time.Millisecond + syncguard.Tolerance + 200*time.Millisecond)
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

// noRaw hides a driver's optional interfaces (RawLookup, ReleaseWatcher).
type noRaw struct{ syncguard.Backend }

// case060: GetByKeyRaw and GetByIDRaw add the raw normalised key and lock ID
// (or the documented placeholders for a driver without RawLookup; both
// paths are exercised, the second by hiding the driver's RawLookup).
func case060[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("cafe\u0301:raw")
	nk, _ := syncguard.NormalizeKey(k)
	r := c.mustAcquire(k, 30*time.Second)
	info := c.lookupKey(k)
	if info == nil {
		c.Fatal("LookupByKey = nil")
	}
	_, hasRaw := syncguard.AsRawLookup(c.d)
	wantKey, wantID := syncguard.RawLockInfo{LockInfo: *info, Key: nk, LockID: r.LockID}, syncguard.RawLockInfo{LockInfo: *info, Key: nk, LockID: r.LockID}
	if !hasRaw {
		wantKey.LockID = syncguard.RawLockIDUnavailable
		wantID.Key = syncguard.RawKeyUnavailable
	}
	check := func(what string, b syncguard.Backend, wantK, wantI syncguard.RawLockInfo) {
		c.Helper()
		gk, err := syncguard.GetByKeyRaw(c.ctx, b, k)
		if err != nil {
			c.Fatalf("%s GetByKeyRaw: %v", what, err)
		}
		if diff := cmp.Diff(&wantK, gk); diff != "" {
			c.Errorf("%s GetByKeyRaw (-want +got):\n%s", what, diff)
		}
		gi, err := syncguard.GetByIDRaw(c.ctx, b, r.LockID)
		if err != nil {
			c.Fatalf("%s GetByIDRaw: %v", what, err)
		}
		if diff := cmp.Diff(&wantI, gi); diff != "" {
			c.Errorf("%s GetByIDRaw (-want +got):\n%s", what, diff)
		}
	}
	check("driver:", c.d, wantKey, wantID)
	noRawKey, noRawID := wantKey, wantID
	noRawKey.LockID, noRawID.Key = syncguard.RawLockIDUnavailable, syncguard.RawKeyUnavailable
	check("driver without RawLookup:", noRaw{c.d}, noRawKey, noRawID)

	c.wantRelease(r.LockID, true)
	for _, b := range []syncguard.Backend{c.d, noRaw{c.d}} {
		if gk, err := syncguard.GetByKeyRaw(c.ctx, b, k); err != nil || gk != nil {
			c.Errorf("GetByKeyRaw after release = %+v, %v; want nil, nil", gk, err)
		}
		if gi, err := syncguard.GetByIDRaw(c.ctx, b, r.LockID); err != nil || gi != nil {
			c.Errorf("GetByIDRaw after release = %+v, %v; want nil, nil", gi, err)
		}
	}
}

// recorder is a Backend that records what the lookup helpers pass to it.
type recorder struct {
	syncguard.Backend
	mu   sync.Mutex
	ctxs []context.Context
	args []string
}

func (r *recorder) note(ctx context.Context, arg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxs = append(r.ctxs, ctx)
	r.args = append(r.args, arg)
}

func (r *recorder) LookupByKey(ctx context.Context, key string) (*syncguard.LockInfo, error) {
	r.note(ctx, key)
	return r.Backend.LookupByKey(ctx, key)
}

func (r *recorder) LookupByID(ctx context.Context, lockID string) (*syncguard.LockInfo, error) {
	r.note(ctx, lockID)
	return r.Backend.LookupByID(ctx, lockID)
}

type markerKey struct{}

// case061: Owns is true while held and false after release; GetByKey and
// GetByID pass their context and argument through unchanged.
func case061[C syncguard.FencedCapabilities](c *tc[C]) {
	k := c.key("cafe\u0301:owns") // decomposed: must reach the driver as is
	r := c.mustAcquire(k, 30*time.Second)
	if ok, err := syncguard.Owns(c.ctx, c.d, r.LockID); err != nil || !ok {
		c.Errorf("Owns while held = %v, %v; want true", ok, err)
	}
	rec := &recorder{Backend: c.d}
	ctx := context.WithValue(c.ctx, markerKey{}, "marker")
	byKey, err := syncguard.GetByKey(ctx, rec, k)
	if err != nil {
		c.Fatalf("GetByKey: %v", err)
	}
	byID, err := syncguard.GetByID(ctx, rec, r.LockID)
	if err != nil {
		c.Fatalf("GetByID: %v", err)
	}
	if diff := cmp.Diff(c.lookupKey(k), byKey); diff != "" {
		c.Errorf("GetByKey differs from LookupByKey (-lookup +helper):\n%s", diff)
	}
	if diff := cmp.Diff(c.lookupID(r.LockID), byID); diff != "" {
		c.Errorf("GetByID differs from LookupByID (-lookup +helper):\n%s", diff)
	}
	if diff := cmp.Diff([]string{k, r.LockID}, rec.args); diff != "" {
		c.Errorf("arguments the helpers passed to the backend (-want +got):\n%s", diff)
	}
	for i, got := range rec.ctxs {
		if got != ctx {
			c.Errorf("call %d: the helper did not pass the caller's context through", i)
		}
	}
	c.wantRelease(r.LockID, true)
	if ok, err := syncguard.Owns(c.ctx, c.d, r.LockID); err != nil || ok {
		c.Errorf("Owns after release = %v, %v; want false", ok, err)
	}
}
