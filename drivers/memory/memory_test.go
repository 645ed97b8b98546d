package memory

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncguard/syncguard/driver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fake clock's start: a whole millisecond.
// t0 is before driver.FenceEpochMs, so that fences start at 1 where a
// test does not advance the clock past the epoch (TestFenceMonotonicity
// does, to see the time floor).
var t0 = time.UnixMilli(1_700_000_000_000)

// fakeClock is a manually advanced clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Ms() int64 { return c.Now().UnixMilli() }

// newTest returns a driver on a fresh fake clock.
func newTest(t *testing.T, opts ...Option) (*Driver, *fakeClock) {
	t.Helper()
	c := newFakeClock()
	return New(append([]Option{WithClock(c.Now)}, opts...)...), c
}

func mustAcquire(t *testing.T, d *Driver, key string, ttl time.Duration) driver.AcquireResult {
	t.Helper()
	r, err := d.Acquire(context.Background(), key, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", key, err)
	}
	if !r.Acquired {
		t.Fatalf("Acquire(%q): not acquired: %+v", key, r)
	}
	return r
}

func isLocked(t *testing.T, d *Driver, key string) bool {
	t.Helper()
	ok, err := d.IsLocked(context.Background(), key)
	if err != nil {
		t.Fatalf("IsLocked(%q): %v", key, err)
	}
	return ok
}

func TestCapabilities(t *testing.T) {
	got := driver.Describe(New().Capabilities())
	want := driver.Info{Name: "memory", Fencing: true, ServerTime: true, FairHandoff: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}

func TestNewPanicsOnNilClock(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New(WithClock(nil)) did not panic")
		}
	}()
	New(WithClock(nil))
}

func TestNewIgnoresNilOption(t *testing.T) {
	d := New(nil, WithCleanupInIsLocked(true))
	if !d.cleanupInIsLocked {
		t.Fatal("option after nil not applied")
	}
}

// TestValidation checks that every operation rejects bad input with
// InvalidArgument, before looking at the (cancelled) context.
func TestValidation(t *testing.T) {
	d := New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := strings.Repeat("x", 600)
	okID := "AAAAAAAAAAAAAAAAAAAAAA"
	lim := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 10}

	tests := []struct {
		name    string
		call    func() error
		message string
	}{
		{"acquire empty key", func() error { _, err := d.Acquire(ctx, "", time.Second); return err }, "key must not be empty"},
		{"acquire long key", func() error { _, err := d.Acquire(ctx, long, time.Second); return err }, "exceeds maximum length"},
		{"acquire bad utf8", func() error { _, err := d.Acquire(ctx, "\xff", time.Second); return err }, "UTF-8"},
		{"acquire ttl 0", func() error { _, err := d.Acquire(ctx, "k", 0); return err }, "ttlMs must be a positive integer"},
		{"acquire ttl -1", func() error { _, err := d.Acquire(ctx, "k", -time.Millisecond); return err }, "ttlMs must be a positive integer"},
		{"acquire ttl 1.5ms", func() error { _, err := d.Acquire(ctx, "k", 1500*time.Microsecond); return err }, "ttlMs must be a positive integer"},
		{"release empty id", func() error { _, err := d.Release(ctx, "", ""); return err }, "invalid lockId format"},
		{"release bad id", func() error { _, err := d.Release(ctx, "", "invalid/lock/id+++++++"); return err }, "invalid lockId format"},
		{"release 23 chars", func() error { _, err := d.Release(ctx, "", okID+"A"); return err }, "invalid lockId format"},
		{"extend bad id", func() error { _, err := d.Extend(ctx, "", "too-short", time.Second); return err }, "invalid lockId format"},
		{"extend ttl 0", func() error { _, err := d.Extend(ctx, "", okID, 0); return err }, "ttlMs must be a positive integer"},
		{"islocked empty", func() error { _, err := d.IsLocked(ctx, ""); return err }, "key must not be empty"},
		{"lookup key empty", func() error { _, err := d.LookupByKey(ctx, ""); return err }, "key must not be empty"},
		{"lookup key long", func() error { _, err := d.LookupByKey(ctx, long); return err }, "exceeds maximum length"},
		{"lookup id bad", func() error { _, err := d.LookupByID(ctx, "invalid-lockid"); return err }, "invalid lockId format"},
		{"raw key empty", func() error { _, err := d.LookupByKey(ctx, ""); return err }, "key must not be empty"},
		{"raw id bad", func() error { _, err := d.LookupByID(ctx, "x"); return err }, "invalid lockId format"},
		{"put empty name", func() error { _, err := d.PutRecord(ctx, "", 1, nil, 0); return err }, "key must not be empty"},
		{"put fence 0", func() error { _, err := d.PutRecord(ctx, "r", 0, nil, 0); return err }, "fence must be positive"},
		{"put ttl negative", func() error { _, err := d.PutRecord(ctx, "r", 1, nil, -time.Second); return err }, "ttlMs must be a positive integer"},
		{"put ttl fraction", func() error { _, err := d.PutRecord(ctx, "r", 1, nil, time.Microsecond); return err }, "ttlMs must be a positive integer"},
		{"get empty name", func() error { _, err := d.GetRecord(ctx, ""); return err }, "key must not be empty"},
		{"delete empty name", func() error { _, err := d.DeleteRecord(ctx, "", 1); return err }, "key must not be empty"},
		{"delete fence 0", func() error { _, err := d.DeleteRecord(ctx, "r", 0); return err }, "fence must be positive"},
		{"allow empty key", func() error { _, err := d.AllowN(ctx, "", lim, 1); return err }, "key must not be empty"},
		{"allow limit 0", func() error {
			_, err := d.AllowN(ctx, "k", driver.RateLimit{Period: time.Second, Burst: 1}, 1)
			return err
		}, "rate limit must be positive"},
		{"allow n negative", func() error { _, err := d.AllowN(ctx, "k", lim, -1); return err }, "must not be negative"},
		{"allow too wide", func() error {
			_, err := d.AllowN(ctx, "k", driver.RateLimit{Limit: 1, Period: 1000 * 24 * time.Hour, Burst: 1 << 20}, 1)
			return err
		}, "supported range"},
		{"reset empty key", func() error { return d.ResetRate(ctx, "") }, "key must not be empty"},
		{"watch empty key", func() error { _, _, err := d.WatchRelease(ctx, ""); return err }, "key must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var le *driver.LockError
			if !errors.As(err, &le) || le.Code != driver.InvalidArgument {
				t.Fatalf("error = %v, want InvalidArgument", err)
			}
			if !strings.Contains(le.Message, tt.message) {
				t.Errorf("message %q does not contain %q", le.Message, tt.message)
			}
		})
	}
}

// TestContext checks cancellation and deadline mapping for every operation.
func TestContext(t *testing.T) {
	d := New()
	held := mustAcquire(t, d, "ctx:held", time.Minute)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	lim := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 10}

	ops := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"acquire", func(ctx context.Context) error { _, err := d.Acquire(ctx, "ctx:k", time.Second); return err }},
		{"release", func(ctx context.Context) error { _, err := d.Release(ctx, "", held.LockID); return err }},
		{"extend", func(ctx context.Context) error { _, err := d.Extend(ctx, "", held.LockID, time.Second); return err }},
		{"islocked", func(ctx context.Context) error { _, err := d.IsLocked(ctx, "ctx:held"); return err }},
		{"lookupkey", func(ctx context.Context) error { _, err := d.LookupByKey(ctx, "ctx:held"); return err }},
		{"lookupid", func(ctx context.Context) error { _, err := d.LookupByID(ctx, held.LockID); return err }},
		{"put", func(ctx context.Context) error { _, err := d.PutRecord(ctx, "r", 1, nil, 0); return err }},
		{"get", func(ctx context.Context) error { _, err := d.GetRecord(ctx, "r"); return err }},
		{"delete", func(ctx context.Context) error { _, err := d.DeleteRecord(ctx, "r", 1); return err }},
		{"allow", func(ctx context.Context) error { _, err := d.AllowN(ctx, "k", lim, 1); return err }},
		{"reset", func(ctx context.Context) error { return d.ResetRate(ctx, "k") }},
		{"watch", func(ctx context.Context) error { _, _, err := d.WatchRelease(ctx, "k"); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.call(canceled)
			if !errors.Is(err, driver.ErrAborted) || !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled: error = %v, want Aborted wrapping context.Canceled", err)
			}
			err = op.call(expired)
			if !errors.Is(err, driver.ErrNetworkTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("deadline: error = %v, want NetworkTimeout wrapping DeadlineExceeded", err)
			}
			if err := op.call(nil); !errors.Is(err, driver.ErrInvalidArgument) {
				t.Errorf("nil ctx: error = %v, want InvalidArgument", err)
			}
		})
	}
	// The held lock is unaffected by the refused calls.
	if r, err := d.Release(context.Background(), "", held.LockID); err != nil || !r.OK {
		t.Fatalf("Release after refused calls = %+v, %v", r, err)
	}
}
