package redis

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// TestLockOnlyCapabilities: the lock-only mode declares no fencing, so
// FenceOf, FencedWriter and OncePerKey (constrained on
// FencedCapabilities) cannot be used with it.
func TestLockOnlyCapabilities(t *testing.T) {
	var c driver.Capabilities = LockOnlyCapabilities{}
	if _, ok := c.(driver.Fenced); ok {
		t.Error("LockOnlyCapabilities satisfies FencedCapabilities")
	}
	want := driver.Info{Name: "redis-lockonly", ServerTime: true, CrossProcess: true}
	if diff := cmp.Diff(want, driver.Describe(c)); diff != "" {
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
	if err != nil || !a.Acquired || a.Fence != 0 || !driver.ValidLockID(a.LockID) {
		t.Fatalf("Acquire = %+v, %v; want a lock without a fence", a, err)
	}
	other := driver.NewLockID()
	type result struct {
		OK     bool
		Detail string
		Code   driver.Code
	}
	code := func(err error) driver.Code {
		if err == nil {
			return 0
		}
		return driver.CodeOf(err)
	}
	rel := func(key, id string) func() result {
		return func() result { r, err := l.Release(ctx, key, id); return result{r.OK, r.Detail, code(err)} }
	}
	ext := func(key, id string) func() result {
		return func() result {
			r, err := l.Extend(ctx, key, id, time.Minute)
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
		}, result{Detail: driver.ReasonLocked}},
		{"keyless release", func() result { r, err := l.Release(ctx, "", a.LockID); return result{r.OK, r.Detail, code(err)} }, result{Code: driver.InvalidArgument}},
		{"keyless extend", func() result {
			r, err := l.Extend(ctx, "", a.LockID, time.Minute)
			return result{r.OK, r.Detail, code(err)}
		}, result{Code: driver.InvalidArgument}},
		{"release by another ID", rel("job", other), result{Detail: driver.DetailNotFound}},
		{"release under another key", rel("other-job", a.LockID), result{Detail: driver.DetailNotFound}},
		{"extend by another ID", ext("job", other), result{Detail: driver.DetailNotFound}},
		{"extend", ext("job", a.LockID), result{OK: true}},
		{"is locked", func() result { ok, err := l.IsLocked(ctx, "job"); return result{OK: ok, Code: code(err)} }, result{OK: true}},
		{"lookup", func() result {
			r, err := l.LookupByKey(ctx, "job")
			return result{OK: r != nil && r.LockID == a.LockID && r.Fence == 0 && r.ExpiresAtMs > time.Now().UnixMilli(), Code: code(err)}
		}, result{OK: true}},
		{"release", rel("job", a.LockID), result{OK: true}},
		{"release again", rel("job", a.LockID), result{Detail: driver.DetailNotFound}},
		{"is locked after release", func() result { ok, err := l.IsLocked(ctx, "job"); return result{OK: ok, Code: code(err)} }, result{}},
		{"lookup by ID", func() result { _, err := l.LookupByID(ctx, a.LockID); return result{Code: code(err)} }, result{Code: driver.InvalidArgument}},
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
