package redis

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
)

// TestLockOnlyCapabilities: the lock-only mode declares no fencing, so
// FenceOf, FencedWriter and OncePerKey (constrained on
// FencedCapabilities) cannot be used with it.
func TestLockOnlyCapabilities(t *testing.T) {
	var c syncguard.Capabilities = LockOnlyCapabilities{}
	if _, ok := c.(syncguard.FencedCapabilities); ok {
		t.Error("LockOnlyCapabilities satisfies FencedCapabilities")
	}
	want := syncguard.CapabilityInfo{Name: "redis-lockonly", TimeAuthority: syncguard.TimeAuthorityServer}
	if diff := cmp.Diff(want, syncguard.Describe(c)); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}

// TestLockOnly runs the lock-only driver's operations in order on one
// key, each step checked against its expected result.
func TestLockOnly(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	l, err := NewLockOnly(c, WithKeyPrefix(testPrefix("lockonly")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ctx := context.Background()
	a, err := l.Acquire(ctx, "job", time.Minute)
	if err != nil || !a.Acquired || a.Fence != 0 || !syncguard.ValidLockID(a.LockID) {
		t.Fatalf("Acquire = %+v, %v; want a lock without a fence", a, err)
	}
	other := syncguard.NewLockID()
	type result struct {
		OK     bool
		Detail string
		Code   syncguard.Code
	}
	code := func(err error) syncguard.Code {
		if err == nil {
			return 0
		}
		return syncguard.CodeOf(err)
	}
	rel := func(key, id string) func() result {
		return func() result { r, err := l.ReleaseKeyed(ctx, key, id); return result{r.OK, r.Detail, code(err)} }
	}
	ext := func(key, id string) func() result {
		return func() result {
			r, err := l.ExtendKeyed(ctx, key, id, time.Minute)
			return result{r.OK, r.Detail, code(err)}
		}
	}
	steps := []struct {
		name string
		do   func() result
		want result
	}{
		{"contended acquire", func() result {
			r, err := l.Acquire(ctx, "job", time.Minute)
			return result{r.Acquired, r.Reason, code(err)}
		}, result{Detail: syncguard.ReasonLocked}},
		{"keyless release", func() result { r, err := l.Release(ctx, a.LockID); return result{r.OK, r.Detail, code(err)} }, result{Code: syncguard.InvalidArgument}},
		{"keyless extend", func() result {
			r, err := l.Extend(ctx, a.LockID, time.Minute)
			return result{r.OK, r.Detail, code(err)}
		}, result{Code: syncguard.InvalidArgument}},
		{"release by another ID", rel("job", other), result{Detail: syncguard.DetailNotFound}},
		{"release under another key", rel("other-job", a.LockID), result{Detail: syncguard.DetailNotFound}},
		{"extend by another ID", ext("job", other), result{Detail: syncguard.DetailNotFound}},
		{"extend", ext("job", a.LockID), result{OK: true}},
		{"is locked", func() result { ok, err := l.IsLocked(ctx, "job"); return result{OK: ok, Code: code(err)} }, result{OK: true}},
		{"lookup", func() result {
			r, err := l.LookupRawByKey(ctx, "job")
			return result{OK: r != nil && r.LockID == a.LockID && r.Fence == 0 && r.ExpiresAtMs > time.Now().UnixMilli(), Code: code(err)}
		}, result{OK: true}},
		{"release", rel("job", a.LockID), result{OK: true}},
		{"release again", rel("job", a.LockID), result{Detail: syncguard.DetailNotFound}},
		{"is locked after release", func() result { ok, err := l.IsLocked(ctx, "job"); return result{OK: ok, Code: code(err)} }, result{}},
		{"lookup by ID", func() result { _, err := l.LookupByID(ctx, a.LockID); return result{Code: code(err)} }, result{Code: syncguard.InvalidArgument}},
	}
	for _, s := range steps {
		if diff := cmp.Diff(s.want, s.do()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestLockOnlyGuard: a Guard over the lock-only driver releases and
// extends its leases by key.
func TestLockOnlyGuard(t *testing.T) {
	t.Parallel()
	l, err := NewLockOnly(singleClient(t), WithKeyPrefix(testPrefix("lockonly-guard")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	g := syncguard.New(l)
	ctx := context.Background()
	lease, err := g.TryAcquire(ctx, "job", syncguard.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.TryAcquire(ctx, "job"); err != syncguard.ErrLocked {
		t.Errorf("second TryAcquire: %v; want ErrLocked", err)
	}
	if ok, err := lease.Extend(ctx, time.Minute); err != nil || !ok {
		t.Errorf("Extend = %v, %v; want true", ok, err)
	}
	if ok, err := lease.Release(ctx); err != nil || !ok {
		t.Errorf("Release = %v, %v; want true", ok, err)
	}
	if locked, err := g.IsLocked(ctx, "job"); err != nil || locked {
		t.Errorf("IsLocked after release = %v, %v", locked, err)
	}
}
