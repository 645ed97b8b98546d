package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

var bg = context.Background()

// setFence presets the fence counter of a normalised key.
func setFence(d *Driver, key string, f int64) {
	sh := d.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[key]
	if ks == nil {
		ks = &keyState{key: key, sh: sh}
		sh.keys[key] = ks
	}
	ks.fence = f
}

// readKey returns what get reads from the state of a normalised key, under
// its shard's lock; the zero value if the key has no state.
func readKey[T any](d *Driver, key string, get func(*keyState) T) T {
	sh := d.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var v T
	if ks := sh.keys[key]; ks != nil {
		v = get(ks)
	}
	return v
}

// fenceOf returns the stored fence counter of a normalised key.
func fenceOf(d *Driver, key string) int64 {
	return readKey(d, key, func(ks *keyState) int64 { return ks.fence })
}

// storedLockID returns the lock ID stored for key, live or not ("" if none).
func storedLockID(d *Driver, key string) string {
	return readKey(d, key, func(ks *keyState) string { return ks.lockID })
}

// sweepAll runs one sweep on every shard, as writes do.
func sweepAll(d *Driver) {
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		ms, ns := d.now()
		d.sweep(sh, ms, ns)
		sh.mu.Unlock()
	}
}

// counts reports how many entries the driver stores, per kind.
type counts struct {
	Keys, Locks, IDs, LockHeap, KeepHeap, Records, RecHeap, Rates, RateHeap, Watched int
}

func (d *Driver) counts() counts {
	var c counts
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		c.Keys += len(sh.keys)
		for _, ks := range sh.keys {
			if ks.lockID != "" {
				c.Locks++
			}
		}
		c.LockHeap += sh.lockExp.len()
		c.KeepHeap += sh.keepExp.len()
		c.Records += len(sh.records)
		c.RecHeap += sh.recExp.len()
		c.Rates += len(sh.rates)
		c.RateHeap += sh.rateExp.len()
		c.Watched += len(sh.watch)
		sh.mu.Unlock()
	}
	for i := range d.idx {
		is := &d.idx[i]
		is.mu.Lock()
		c.IDs += len(is.ids)
		is.mu.Unlock()
	}
	return c
}

func TestLifecycle(t *testing.T) {
	d, clk := newTest(t)
	const key = "lifecycle:basic:test"
	r := mustAcquire(t, d, key, 30*time.Second)
	if !driver.ValidLockID(r.LockID) {
		t.Errorf("LockID %q has a bad format", r.LockID)
	}
	want := driver.AcquireResult{Acquired: true, LockID: r.LockID, Fence: 1, ExpiresAtMs: clk.Ms() + 30_000}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("Acquire (-want +got):\n%s", diff)
	}
	if r.Fence.String() != "000000000000001" {
		t.Errorf("first fence = %s", r.Fence)
	}
	if !isLocked(t, d, key) {
		t.Fatal("IsLocked = false after Acquire")
	}
	wantInfo := &driver.LockInfo{
		Key:          key,
		LockID:       r.LockID,
		Fence:        1,
		ExpiresAtMs:  r.ExpiresAtMs,
		AcquiredAtMs: clk.Ms(),
	}
	byKey, err := d.LookupByKey(bg, key)
	if err != nil {
		t.Fatal(err)
	}
	byID, err := d.LookupByID(bg, r.LockID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantInfo, byKey); diff != "" {
		t.Errorf("LookupByKey (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantInfo, byID); diff != "" {
		t.Errorf("LookupByID (-want +got):\n%s", diff)
	}
	rawKey, _ := d.LookupByKey(bg, key)
	rawID, _ := d.LookupByID(bg, r.LockID)
	wantRaw := wantInfo
	if diff := cmp.Diff(wantRaw, rawKey); diff != "" {
		t.Errorf("LookupRawByKey (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantRaw, rawID); diff != "" {
		t.Errorf("LookupRawByID (-want +got):\n%s", diff)
	}

	rel, err := d.Release(bg, "", r.LockID)
	if diff := cmp.Diff(driver.ReleaseResult{OK: true}, rel); err != nil || diff != "" {
		t.Fatalf("Release: %v (-want +got):\n%s", err, diff)
	}
	if isLocked(t, d, key) {
		t.Fatal("IsLocked = true after Release")
	}
	rel, err = d.Release(bg, "", r.LockID)
	if diff := cmp.Diff(driver.ReleaseResult{Detail: driver.DetailNotFound}, rel); err != nil || diff != "" {
		t.Fatalf("second Release: %v (-want +got):\n%s", err, diff)
	}
	for name, f := range map[string]func() (any, error){
		"LookupByKey":    func() (any, error) { return d.LookupByKey(bg, key) },
		"LookupByID":     func() (any, error) { return d.LookupByID(bg, r.LockID) },
		"LookupRawByKey": func() (any, error) { return d.LookupByKey(bg, key) },
		"LookupRawByID":  func() (any, error) { return d.LookupByID(bg, r.LockID) },
	} {
		v, err := f()
		if err != nil || !isNilPtr(v) {
			t.Errorf("%s after release = %v, %v; want nil", name, v, err)
		}
	}
	if c := d.counts(); c.Locks != 0 || c.IDs != 0 || c.LockHeap != 0 || c.Keys != 1 {
		t.Errorf("storage after release: %+v", c)
	}
}

func isNilPtr(v any) bool {
	switch p := v.(type) {
	case *driver.LockInfo:
		return p == nil
	}
	return v == nil
}

func TestUnknownAndForeignIDs(t *testing.T) {
	d, _ := newTest(t)
	r := mustAcquire(t, d, "owner", time.Minute)
	for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "abcdefghijklmnopqrstuv", "___---_-_-_-_-_-_-_-_-"} {
		rel, err := d.Release(bg, "", id)
		if diff := cmp.Diff(driver.ReleaseResult{Detail: driver.DetailNotFound}, rel); err != nil || diff != "" {
			t.Errorf("Release(%s): %v (-want +got):\n%s", id, err, diff)
		}
		ext, err := d.Extend(bg, "", id, time.Hour)
		if diff := cmp.Diff(driver.ExtendResult{Detail: driver.DetailNotFound}, ext); err != nil || diff != "" {
			t.Errorf("Extend(%s): %v (-want +got):\n%s", id, err, diff)
		}
		if info, err := d.LookupByID(bg, id); info != nil || err != nil {
			t.Errorf("LookupByID(%s) = %v, %v", id, info, err)
		}
	}
	if !isLocked(t, d, "owner") {
		t.Fatal("foreign calls released the lock")
	}
	if rel, _ := d.Release(bg, "", r.LockID); !rel.OK {
		t.Fatal("owner release failed")
	}
}

func TestContentionWritesNothing(t *testing.T) {
	d, _ := newTest(t)
	const key = "contention"
	first := mustAcquire(t, d, key, 30*time.Second)
	before, _ := d.LookupByKey(bg, key)
	for range 3 {
		r, err := d.Acquire(bg, key, time.Minute)
		if err != nil {
			t.Fatalf("contended Acquire returned error %v", err)
		}
		if diff := cmp.Diff(driver.AcquireResult{Reason: driver.ReasonLocked}, r); diff != "" {
			t.Fatalf("contended Acquire (-want +got):\n%s", diff)
		}
	}
	after, _ := d.LookupByKey(bg, key)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("contention changed the lock (-before +after):\n%s", diff)
	}
	if _, err := d.Release(bg, "", first.LockID); err != nil {
		t.Fatal(err)
	}
	if r := mustAcquire(t, d, key, time.Second); r.Fence != first.Fence+1 {
		t.Fatalf("fence after contention = %d, want %d", r.Fence, first.Fence+1)
	}
}

func TestNormalisedKeys(t *testing.T) {
	d, _ := newTest(t)
	r := mustAcquire(t, d, "cafe\u0301", time.Minute)
	if !isLocked(t, d, "caf\u00e9") {
		t.Fatal("composed key not locked")
	}
	c, err := d.Acquire(bg, "caf\u00e9", time.Minute)
	if err != nil || c.Acquired || c.Reason != driver.ReasonLocked {
		t.Fatalf("composed Acquire = %+v, %v", c, err)
	}
	info, _ := d.LookupByKey(bg, "caf\u00e9")
	if info == nil || driver.HashKey(info.LockID) != driver.HashKey(r.LockID) || info.Key != "caf\u00e9" ||
		driver.HashKey(info.Key) != driver.HashKey("caf\u00e9") {
		t.Fatalf("lookup = %+v", info)
	}
}

// TestToleranceBoundary: a lock expired 999 ms ago is live, 1000 ms ago not.
func TestToleranceBoundary(t *testing.T) {
	tests := []struct {
		name     string
		pastExp  time.Duration
		wantLive bool
	}{
		{"at expiry", 0, true},
		{"now-500", 500 * time.Millisecond, true},
		{"now-999", 999 * time.Millisecond, true},
		{"now-1000", 1000 * time.Millisecond, false},
		{"now-1001", 1001 * time.Millisecond, false},
		{"now-10000", 10 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, clk := newTest(t)
			const key = "tolerance"
			r := mustAcquire(t, d, key, time.Second)
			clk.Set(time.UnixMilli(r.ExpiresAtMs).Add(tt.pastExp))

			if got := isLocked(t, d, key); got != tt.wantLive {
				t.Errorf("IsLocked = %v, want %v", got, tt.wantLive)
			}
			info, _ := d.LookupByKey(bg, key)
			byID, _ := d.LookupByID(bg, r.LockID)
			if (info != nil) != tt.wantLive || (byID != nil) != tt.wantLive {
				t.Errorf("lookups = %v, %v; want live %v", info, byID, tt.wantLive)
			}
			ext, err := d.Extend(bg, "", r.LockID, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			wantExt := driver.ExtendResult{Detail: driver.DetailExpired}
			if tt.wantLive {
				wantExt = driver.ExtendResult{OK: true, ExpiresAtMs: clk.Ms() + 60_000}
			}
			if diff := cmp.Diff(wantExt, ext); diff != "" {
				t.Errorf("Extend (-want +got):\n%s", diff)
			}
			c, err := d.Acquire(bg, key, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if c.Acquired == tt.wantLive {
				t.Errorf("contender Acquired = %v, want %v", c.Acquired, !tt.wantLive)
			}
		})
	}
}

func TestReleaseAtBoundary(t *testing.T) {
	for _, tt := range []struct {
		past time.Duration
		want driver.ReleaseResult
	}{
		{999 * time.Millisecond, driver.ReleaseResult{OK: true}},
		{1000 * time.Millisecond, driver.ReleaseResult{Detail: driver.DetailExpired}},
	} {
		d, clk := newTest(t)
		r := mustAcquire(t, d, "k", time.Second)
		clk.Set(time.UnixMilli(r.ExpiresAtMs).Add(tt.past))
		got, err := d.Release(bg, "", r.LockID)
		if diff := cmp.Diff(tt.want, got); err != nil || diff != "" {
			t.Errorf("Release at exp+%v: %v (-want +got):\n%s", tt.past, err, diff)
		}
		// Either way the lock data is gone and the ID no longer resolves.
		if c := d.counts(); c.Locks != 0 || c.IDs != 0 || c.LockHeap != 0 {
			t.Errorf("storage after release at exp+%v: %+v", tt.past, c)
		}
		if again, _ := d.Release(bg, "", r.LockID); again.OK || again.Detail != driver.DetailNotFound {
			t.Errorf("second release = %+v", again)
		}
	}
}

func TestExpiryAndTakeover(t *testing.T) {
	d, clk := newTest(t)
	const key = "expiry"
	old := mustAcquire(t, d, key, time.Second)
	clk.Advance(2500 * time.Millisecond)
	if isLocked(t, d, key) {
		t.Fatal("locked after TTL + tolerance")
	}
	// Lookups are read-only: the expired data is still stored.
	if storedLockID(d, key) != old.LockID {
		t.Fatal("lookup deleted expired lock data")
	}
	ext, _ := d.Extend(bg, "", old.LockID, time.Second)
	if diff := cmp.Diff(driver.ExtendResult{Detail: driver.DetailExpired}, ext); diff != "" {
		t.Errorf("Extend of expired (-want +got):\n%s", diff)
	}
	if isLocked(t, d, key) {
		t.Fatal("Extend resurrected the lock")
	}
	cur := mustAcquire(t, d, key, 30*time.Second)
	if cur.Fence != old.Fence+1 {
		t.Errorf("fence after expiry = %d, want %d", cur.Fence, old.Fence+1)
	}
	// The stale holder can do nothing to the new lock.
	if ext, _ := d.Extend(bg, "", old.LockID, 30*time.Second); ext.OK || ext.Detail != driver.DetailNotFound {
		t.Errorf("stale Extend = %+v", ext)
	}
	if rel, _ := d.Release(bg, "", old.LockID); rel.OK || rel.Detail != driver.DetailNotFound {
		t.Errorf("stale Release = %+v", rel)
	}
	if info, _ := d.LookupByID(bg, old.LockID); info != nil {
		t.Errorf("stale LookupByID = %+v", info)
	}
	info, _ := d.LookupByKey(bg, key)
	if info == nil || driver.HashKey(info.LockID) != driver.HashKey(cur.LockID) || info.ExpiresAtMs != cur.ExpiresAtMs {
		t.Errorf("new lock after stale calls: %+v", info)
	}
	if c := d.counts(); c.IDs != 1 || c.LockHeap != 1 {
		t.Errorf("storage after takeover: %+v", c)
	}
}

func TestExtendResets(t *testing.T) {
	d, clk := newTest(t)
	const key = "extend"
	r := mustAcquire(t, d, key, 30*time.Second)
	acquiredAt := clk.Ms()

	steps := []struct {
		advance time.Duration
		ttl     time.Duration
	}{
		{100 * time.Millisecond, 5 * time.Second}, // shortens
		{4 * time.Second, 2 * time.Second},
		{2500 * time.Millisecond, time.Hour}, // within tolerance: still extendable
		{time.Minute, time.Millisecond},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		ext, err := d.Extend(bg, "", r.LockID, s.ttl)
		want := driver.ExtendResult{OK: true, ExpiresAtMs: clk.Ms() + s.ttl.Milliseconds()}
		if diff := cmp.Diff(want, ext); err != nil || diff != "" {
			t.Fatalf("step %d: Extend: %v (-want +got):\n%s", i, err, diff)
		}
		info, _ := d.LookupByKey(bg, key)
		wantInfo := &driver.LockInfo{
			Key: key, LockID: r.LockID,
			Fence: r.Fence, ExpiresAtMs: want.ExpiresAtMs, AcquiredAtMs: acquiredAt,
		}
		if diff := cmp.Diff(wantInfo, info); diff != "" {
			t.Fatalf("step %d: lookup (-want +got):\n%s", i, diff)
		}
	}
	if ext, _ := d.Extend(bg, "", r.LockID, time.Minute); !ext.OK {
		t.Fatal("extend within tolerance of a 1 ms TTL failed")
	}
	if rel, _ := d.Release(bg, "", r.LockID); !rel.OK {
		t.Fatal("release failed")
	}
	if ext, _ := d.Extend(bg, "", r.LockID, time.Minute); ext.OK || ext.Detail != driver.DetailNotFound {
		t.Fatalf("extend after release = %+v", ext)
	}
	if isLocked(t, d, key) {
		t.Fatal("extend after release resurrected the lock")
	}
}

func TestFenceMonotonicity(t *testing.T) {
	d, clk := newTest(t)
	clk.Advance(time.UnixMilli(1_767_225_600_000).Sub(t0)) // 2026: past the fence epoch
	var a []driver.Fence
	for range 5 {
		r := mustAcquire(t, d, "fence:a", time.Second)
		a = append(a, r.Fence)
		if _, err := d.Release(bg, "", r.LockID); err != nil {
			t.Fatal(err)
		}
	}
	b := mustAcquire(t, d, "fence:b", time.Second)
	// Expiry without release, then takeover.
	clk.Advance(3 * time.Second)
	b2 := mustAcquire(t, d, "fence:b", time.Second)
	// Expiry, sweep of the lock data, then takeover.
	clk.Advance(10 * time.Second)
	sweepAll(d)
	if storedLockID(d, "fence:b") != "" {
		t.Fatal("sweep did not delete lock data")
	}
	b3 := mustAcquire(t, d, "fence:b", time.Second)

	// The fences of a stand at the floor of the frozen clock and count up
	// from it; b's follow the clock as it advances.
	floor := func() driver.Fence { return driver.FenceFloor(clk.Now().UnixMicro()) }
	b0 := driver.FenceFloor(clk.Now().Add(-13 * time.Second).UnixMicro())
	got := []driver.Fence{a[0], a[1], a[2], a[3], a[4], b.Fence, b2.Fence, b3.Fence}
	want := []driver.Fence{b0, b0 + 1, b0 + 2, b0 + 3, b0 + 4, b0, b0 + 300_000, floor()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("fences (-want +got):\n%s", diff)
	}

	// Once the floor has passed the last fence by the margin and the lock
	// is gone, the key's state goes; the next fence is the floor, still
	// greater.
	if _, err := d.Release(bg, "", b3.LockID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Duration(driver.FenceMarginMs) * time.Millisecond)
	sweepAll(d)
	if c := d.counts(); c.Keys != 0 || c.KeepHeap != 0 {
		t.Fatalf("after the margin: %+v; want no key state", c)
	}
	if b4 := mustAcquire(t, d, "fence:b", time.Second); b4.Fence != floor() || b4.Fence <= b3.Fence {
		t.Fatalf("fence after the key state went = %v; want the floor %v > %v", b4.Fence, floor(), b3.Fence)
	}
}

func TestFenceOverflowLeavesNoLock(t *testing.T) {
	var buf bytes.Buffer
	d, _ := newTest(t, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	const key = "overflow"
	setFence(d, key, 899_999_999_999_999)

	r := mustAcquire(t, d, key, time.Minute)
	if r.Fence != driver.FenceMax || r.Fence.String() != "900000000000000" {
		t.Fatalf("fence = %s, want %s", r.Fence, driver.FenceMax)
	}
	if n := len(logLines(t, &buf)); n != 1 {
		t.Fatalf("warnings = %d, want 1", n)
	}
	if _, err := d.Release(bg, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	_, err := d.Acquire(bg, key, time.Minute)
	var le *driver.LockError
	if !errors.As(err, &le) || le.Code != driver.Internal || le.Key != key {
		t.Fatalf("overflow Acquire error = %#v, want Internal with key", err)
	}
	if isLocked(t, d, key) {
		t.Fatal("overflow left a lock")
	}
	if info, _ := d.LookupByKey(bg, key); info != nil {
		t.Fatalf("overflow left lock data %+v", info)
	}
	if got := fenceOf(d, key); got != 900_000_000_000_000 {
		t.Fatalf("counter after overflow = %d", got)
	}
	if c := d.counts(); c.Locks != 0 || c.IDs != 0 || c.LockHeap != 0 {
		t.Fatalf("storage after overflow: %+v", c)
	}
	// An overflowing never-seen key leaves no state either.
	setFence(d, "other", 900_000_000_000_000)
	if _, err := d.Acquire(bg, "other", time.Minute); !errors.Is(err, driver.ErrInternal) {
		t.Fatalf("error = %v", err)
	}
	if c := d.counts(); c.Locks != 0 || c.IDs != 0 {
		t.Fatalf("storage after second overflow: %+v", c)
	}
}

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestFenceWarning(t *testing.T) {
	var buf bytes.Buffer
	d, _ := newTest(t, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	const key = "secret:customer:42"
	setFence(d, key, int64(driver.FenceWarn)-1)

	r := mustAcquire(t, d, key, time.Minute) // == FenceWarn: no warning
	if len(logLines(t, &buf)) != 0 {
		t.Fatalf("warning at fence %s: %s", r.Fence, buf.String())
	}
	d.Release(bg, "", r.LockID)
	r = mustAcquire(t, d, key, time.Minute) // FenceWarn+1: one warning
	lines := logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("warnings = %d, want 1: %s", len(lines), buf.String())
	}
	got := lines[0]
	delete(got, "time")
	want := map[string]any{
		"level":    "WARN",
		"msg":      "syncguard: fence counter approaching its limit",
		"backend":  "memory",
		"keyHash":  driver.HashKey(key),
		"fence":    r.Fence.String(),
		"fenceMax": driver.FenceMax.String(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warning (-want +got):\n%s", diff)
	}
	if strings.Contains(buf.String(), key) {
		t.Errorf("warning contains the raw key: %s", buf.String())
	}
}

func TestCleanupInIsLocked(t *testing.T) {
	tests := []struct {
		name     string
		cleanup  bool
		pastExp  time.Duration
		wantGone bool
	}{
		{"disabled", false, time.Hour, false},
		{"within tolerance", true, 500 * time.Millisecond, false},
		{"at guard", true, 2000 * time.Millisecond, false},
		{"past guard", true, 2001 * time.Millisecond, true},
		{"long past", true, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, clk := newTest(t, WithCleanupInIsLocked(tt.cleanup))
			r := mustAcquire(t, d, "k", time.Second)
			live := mustAcquire(t, d, "live", 24*time.Hour)
			clk.Set(time.UnixMilli(r.ExpiresAtMs).Add(tt.pastExp))
			wantLocked := driver.IsLive(r.ExpiresAtMs, clk.Ms())
			for range 2 { // the result never changes because of cleanup
				if got := isLocked(t, d, "k"); got != wantLocked {
					t.Fatalf("IsLocked = %v, want %v", got, wantLocked)
				}
			}
			if gone := storedLockID(d, "k") == ""; gone != tt.wantGone {
				t.Fatalf("lock data gone = %v, want %v", gone, tt.wantGone)
			}
			if !isLocked(t, d, "live") || storedLockID(d, "live") != live.LockID {
				t.Fatal("cleanup touched a live lock")
			}
			if fenceOf(d, "k") != 1 {
				t.Fatal("cleanup touched the fence counter")
			}
			if !wantLocked {
				if n := mustAcquire(t, d, "k", time.Second); n.Fence != 2 {
					t.Fatalf("fence after cleanup = %d, want 2", n.Fence)
				}
			}
		})
	}
}

func TestLookupIsReadOnly(t *testing.T) {
	d, clk := newTest(t)
	r := mustAcquire(t, d, "ro", time.Second)
	first, _ := d.LookupByKey(bg, "ro")
	for range 5 {
		clk.Advance(100 * time.Millisecond)
		info, _ := d.LookupByKey(bg, "ro")
		byID, _ := d.LookupByID(bg, r.LockID)
		if diff := cmp.Diff(first, info); diff != "" {
			t.Fatalf("lookup changed (-first +now):\n%s", diff)
		}
		if diff := cmp.Diff(first, byID); diff != "" {
			t.Fatalf("lookup by ID differs (-key +id):\n%s", diff)
		}
	}
	clk.Advance(time.Hour)
	if info, _ := d.LookupByKey(bg, "ro"); info != nil {
		t.Fatal("expired lock visible")
	}
	if info, _ := d.LookupByID(bg, r.LockID); info != nil {
		t.Fatal("expired lock visible by ID")
	}
	if isLocked(t, d, "ro") || storedLockID(d, "ro") != r.LockID {
		t.Fatal("lookup or IsLocked deleted expired data without cleanup enabled")
	}
}

// TestExclusion runs goroutines that loop acquire / critical section /
// release on one key with the real clock and checks that no two ever hold
// it at once and that fences increase in entry order.
func TestExclusion(t *testing.T) {
	d := New()
	const (
		workers = 8
		rounds  = 300
	)
	var (
		inside    atomic.Int32
		mu        sync.Mutex
		lastFence driver.Fence
		entries   int
		wg        sync.WaitGroup
	)
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for done := 0; done < rounds; {
				r, err := d.Acquire(bg, "exclusion", 10*time.Second)
				if err != nil {
					errs <- err
					return
				}
				if !r.Acquired {
					continue
				}
				if n := inside.Add(1); n != 1 {
					errs <- errors.New("two holders at once")
				}
				mu.Lock()
				if r.Fence <= lastFence {
					errs <- errors.New("fence did not increase in entry order")
				}
				lastFence = r.Fence
				entries++
				mu.Unlock()
				inside.Add(-1)
				rel, err := d.Release(bg, "", r.LockID)
				if err != nil || !rel.OK {
					errs <- errors.New("release failed")
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if entries != workers*rounds {
		t.Fatalf("entries = %d; want %d", entries, workers*rounds)
	}
}

func TestConcurrentRelease(t *testing.T) {
	d := New()
	for round := range 50 {
		r := mustAcquire(t, d, "at-most-once", time.Minute)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				rel, err := d.Release(bg, "", r.LockID)
				if err != nil {
					t.Error(err)
				}
				if rel.OK {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if n := ok.Load(); n != 1 {
			t.Fatalf("round %d: %d releases reported OK, want 1", round, n)
		}
	}
}

func TestAbsentCounterRace(t *testing.T) {
	d := New()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []driver.AcquireResult
	)
	for range 20 {
		wg.Go(func() {
			r, err := d.Acquire(bg, "fresh", time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Acquired {
				mu.Lock()
				won = append(won, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(won) != 1 || won[0].Fence == 0 {
		t.Fatalf("winners = %+v, want one with a fence", won)
	}
	d.Release(bg, "", won[0].LockID)
	prev := won[0].Fence
	for range 20 {
		r := mustAcquire(t, d, "fresh", time.Minute)
		if r.Fence <= prev {
			t.Fatalf("cycle fence = %d, want > %d", r.Fence, prev)
		}
		d.Release(bg, "", r.LockID)
	}
}
