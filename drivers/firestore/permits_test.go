package firestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
)

// TestPermitStorageFollowsLivePermits: a key's permit document stays while
// it holds a permit or its counter must be kept (FenceKeepMs); then the
// next write on the key deletes it, or Sweep does, and a later permit of
// the key continues above its fences. Documents with live permits are left
// alone.
func TestPermitStorageFollowsLivePermits(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	count := func() int {
		t.Helper()
		snaps, err := d.permits.Documents(ctx).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		return len(snaps)
	}
	acquire := func(key string, ttl time.Duration) driver.AcquireResult {
		t.Helper()
		r, err := d.AcquirePermit(ctx, key, 2, ttl)
		if err != nil || !r.Acquired {
			t.Fatalf("AcquirePermit(%q) = %+v, %v; want a permit", key, r, err)
		}
		return r
	}
	release := func(key, id string) {
		t.Helper()
		if r, err := d.ReleasePermit(ctx, key, id); err != nil || !r.OK {
			t.Fatalf("ReleasePermit(%q) = %+v, %v; want OK", key, r, err)
		}
	}

	const released = 10
	fences := map[string]driver.Fence{}
	for i := range released {
		k := fmt.Sprintf("gone/%d", i)
		r := acquire(k, 30*time.Second)
		fences[k] = r.Fence
		release(k, r.LockID)
	}
	for _, k := range []string{"live/a", "live/b"} {
		acquire(k, 30*time.Second)
	}
	acquire("short", 100*time.Millisecond) // never released
	inline := acquire("inline", 30*time.Second)
	if n := count(); n != released+4 {
		t.Fatalf("%d permit documents; want %d (released permits keep their counter for FenceKeepMs)", n, released+4)
	}

	time.Sleep(time.Duration(driver.FenceMarginMs)*time.Millisecond + 300*time.Millisecond)

	// The write that leaves the document without a permit deletes it once
	// the counter may go.
	release("inline", inline.LockID)
	id, _ := docID("inline")
	if s, err := getDoc(ctx, d.permits.Doc(id)); err != nil || s != nil {
		t.Errorf("permit document of %q after its release past FenceKeepMs: %v, %v; want deleted", "inline", s, err)
	}
	swept, err := d.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if swept != released+1 || count() != 2 {
		t.Errorf("Sweep deleted %d, %d permit documents left; want %d deleted (released, expired), 2 left (live)", swept, count(), released+1)
	}
	for _, k := range []string{"live/a", "live/b"} {
		p, err := d.Permits(ctx, k)
		if err != nil || len(p) != 1 {
			t.Errorf("Permits(%q) after Sweep = %v, %v; want the live permit", k, p, err)
		}
		id, _ := docID(k)
		s, err := getDoc(ctx, d.permits.Doc(id))
		if err != nil || s == nil {
			t.Fatalf("permit document of %q: %v, %v", k, s, err)
		}
		if _, ok := s.Data()["expireAt"].(time.Time); !ok {
			t.Errorf("permit document of %q without expireAt: %v", k, s.Data())
		}
	}
	for k, f := range fences {
		if r := acquire(k, time.Second); r.Fence <= f {
			t.Errorf("permit of %q after Sweep: fence %v; want > %v", k, r.Fence, f)
		}
	}
}

// TestPermitDocumentLayout: one document per key in the permit
// collection, holding the counter and the permits by ID; locks and fence
// counters of the same key are untouched.
func TestPermitDocumentLayout(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	a, err := d.AcquirePermit(ctx, "layout", 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.AcquirePermit(ctx, "layout", 3, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.permits.Doc("layout").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Data()
	if f, _ := m["fence"].(int64); f != int64(b.Fence) {
		t.Errorf("counter %v; want %v", m["fence"], b.Fence)
	}
	ps, _ := m["permits"].(map[string]any)
	if len(ps) != 2 || ps[a.LockID] == nil || ps[b.LockID] == nil {
		t.Errorf("permits %v; want %s and %s", ps, a.LockID, b.LockID)
	}
	for _, col := range []*firestore.CollectionRef{d.locks, d.fences} {
		if n, err := col.Documents(ctx).GetAll(); err != nil || len(n) != 0 {
			t.Errorf("%s: %d documents, %v; want none", col.ID, len(n), err)
		}
	}
}

// TestPermitKeepsItsCallersLimit: a permit counts with the limit its
// caller passed (docs/contract.md#permits), not with the smaller limit in
// force when it was granted: once the limit-2 holder leaves, two limit-3
// holders leave room for a third.
func TestPermitKeepsItsCallersLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := newDriver(t, newClient(t))
	const key = "callers-limit"
	acquire := func(limit int) driver.AcquireResult {
		t.Helper()
		r, err := d.AcquirePermit(ctx, key, limit, time.Minute)
		if err != nil {
			t.Fatalf("AcquirePermit(limit %d): %v", limit, err)
		}
		return r
	}
	a := acquire(2)
	if b := acquire(3); !b.Acquired || !a.Acquired {
		t.Fatalf("first two permits: %+v, %+v; want both granted", a, b)
	}
	if r, err := d.ReleasePermit(ctx, key, a.LockID); err != nil || !r.OK {
		t.Fatalf("ReleasePermit = %+v, %v", r, err)
	}
	if c := acquire(3); !c.Acquired {
		t.Fatalf("second limit-3 permit refused: %+v", c)
	}
	if e := acquire(3); !e.Acquired {
		t.Errorf("third limit-3 permit with two limit-3 holders refused: %+v; want granted", e)
	}
	if f := acquire(3); f.Acquired {
		t.Errorf("fourth limit-3 permit granted: %+v; want refused", f)
	}
}
