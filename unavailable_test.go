package syncguard_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// flakyDriver fails the next acquires / releases with a backend error. It
// embeds the plain driver interface, so the Guard sees no hand-off or
// release watcher: every attempt goes through its Acquire.
type flakyDriver struct {
	driver.Driver[memory.Capabilities]
	code     driver.Code
	acquires atomic.Int32
	failAcq  atomic.Int32 // fail this many Acquire calls
	releases atomic.Int32
	failRel  atomic.Int32 // fail this many Release calls
}

func (f *flakyDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	f.acquires.Add(1)
	if f.failAcq.Add(-1) >= 0 {
		return driver.AcquireResult{}, driver.NewError(f.code, "backend away")
	}
	return f.Driver.Acquire(ctx, key, ttl)
}

func (f *flakyDriver) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	f.releases.Add(1)
	if f.failRel.Add(-1) >= 0 {
		return driver.ReleaseResult{}, driver.NewError(f.code, "backend away")
	}
	return f.Driver.Release(ctx, key, lockID)
}

// TestAcquireRidesOutUnavailability: within its Timeout an acquisition
// retries ServiceUnavailable and NetworkTimeout like contention (issue 16:
// a waiter with a budget survives a restart or failover shorter than its
// budget); RetryUnavailable(false) fails on the first one; an outage longer
// than the Timeout returns the backend's error, not AcquisitionTimeout; and
// the caller's own context is never retried.
func TestAcquireRidesOutUnavailability(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		code      driver.Code
		fail      int32
		opts      []syncguard.AcquireOption
		cancelled bool
		wantCode  driver.Code // 0: acquired
		wantCalls int32
	}{
		{name: "unavailable, then up", code: driver.ServiceUnavailable, fail: 3, wantCalls: 4},
		{name: "timeouts, then up", code: driver.NetworkTimeout, fail: 2, wantCalls: 3},
		{name: "fail fast", code: driver.ServiceUnavailable, fail: 3, opts: []syncguard.AcquireOption{syncguard.RetryUnavailable(false)},
			wantCode: driver.ServiceUnavailable, wantCalls: 1},
		{name: "outage longer than the retries", code: driver.ServiceUnavailable, fail: 100, opts: []syncguard.AcquireOption{syncguard.MaxRetries(4)},
			wantCode: driver.ServiceUnavailable, wantCalls: 5},
		{name: "outage longer than the Timeout", code: driver.NetworkTimeout, fail: 1 << 20, opts: []syncguard.AcquireOption{syncguard.MaxRetries(1 << 20), syncguard.Timeout(100 * time.Millisecond)},
			wantCode: driver.NetworkTimeout},
		{name: "internal errors are not retried", code: driver.Internal, fail: 3, wantCode: driver.Internal, wantCalls: 1},
		{name: "cancelled caller", code: driver.ServiceUnavailable, fail: 3, cancelled: true, wantCode: driver.Aborted, wantCalls: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &flakyDriver{Driver: memory.New(), code: tc.code}
			f.failAcq.Store(tc.fail)
			g := syncguard.New[memory.Capabilities](f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			opts := append([]syncguard.AcquireOption{syncguard.RetryDelay(time.Millisecond)}, tc.opts...)
			start := time.Now()
			l, err := g.Acquire(ctx, "k", opts...)
			took := time.Since(start)
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				l.Close()
			} else {
				if got := driver.CodeOf(err); got != tc.wantCode {
					t.Fatalf("Acquire: %v (code %v); want %v", err, got, tc.wantCode)
				}
				if errors.Is(err, syncguard.ErrLocked) {
					t.Errorf("a backend failure matches ErrLocked: %v", err)
				}
			}
			if tc.wantCalls != 0 && f.acquires.Load() != tc.wantCalls {
				t.Errorf("%d attempts; want %d", f.acquires.Load(), tc.wantCalls)
			}
			if took > time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestReleaseRetriedInBackground: a release that fails because the backend
// is away is retried in the background, so the key frees soon after the
// backend returns (issue 16: on PostgreSQL the next Lock took the whole
// 30 s TTL); with the backend away for good, the retries end at the
// lease's expiry and leave no goroutine behind.
func TestReleaseRetriedInBackground(t *testing.T) {
	// Not parallel: goleak compares with the goroutines at its start.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, code := range []driver.Code{driver.ServiceUnavailable, driver.NetworkTimeout} {
		f := &flakyDriver{Driver: memory.New(), code: code}
		g := syncguard.New[memory.Capabilities](f, syncguard.WithOnReleaseError(func(error, string, string) {}))
		ctx := context.Background()
		l, err := g.Acquire(ctx, "k", syncguard.TTL(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		f.failRel.Store(3) // the release and the first two retries
		if ok, err := l.Release(ctx); ok || driver.CodeOf(err) != code {
			t.Fatalf("Release = %v, %v; want %v", ok, err, code)
		}
		start := time.Now()
		for {
			locked, err := g.IsLocked(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if !locked {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%v: key still locked %v after the failed release", code, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%v: key free %v after the failed release, %d release calls", code, time.Since(start).Round(time.Millisecond), f.releases.Load())

		// Away for good: the retries end with the lease.
		l, err = g.Acquire(ctx, "k2", syncguard.TTL(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		f.failRel.Store(1 << 20)
		l.Close()
		before := f.releases.Load()
		time.Sleep(600 * time.Millisecond)
		after := f.releases.Load()
		time.Sleep(300 * time.Millisecond)
		if f.releases.Load() != after || after == before {
			t.Errorf("%v: release calls %d → %d → %d; want retries that stop at the expiry", code, before, after, f.releases.Load())
		}
	}
}

// watchingFlaky is a flakyDriver with a release watcher that, like a
// subscription to a server that is down, blocks until its context ends.
type watchingFlaky struct {
	*flakyDriver
	watches atomic.Int32
}

func (w *watchingFlaky) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	w.watches.Add(1)
	<-ctx.Done()
	return nil, nil, driver.ContextError(ctx.Err())
}

// TestAcquireRetriesInsteadOfWatchingADeadBackend: after an attempt that
// failed because the backend is away, the acquisition waits its backoff
// and attempts again; it does not subscribe to releases (which would dial
// the same dead server and could hold it for the rest of its Timeout,
// reporting one attempt where more were allowed). It subscribes once the
// backend answers "locked".
func TestAcquireRetriesInsteadOfWatchingADeadBackend(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := &flakyDriver{Driver: memory.New(), code: driver.ServiceUnavailable}
	f.failAcq.Store(3)
	w := &watchingFlaky{flakyDriver: f}
	g := syncguard.New[memory.Capabilities](w)
	start := time.Now()
	l, err := g.Acquire(context.Background(), "k", syncguard.RetryDelay(time.Millisecond), syncguard.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v: waited in a subscription instead of retrying", took)
	}
	if got := f.acquires.Load(); got != 4 {
		t.Errorf("%d attempts; want 4", got)
	}
	if got := w.watches.Load(); got != 0 {
		t.Errorf("%d subscriptions after backend failures; want 0", got)
	}

	// Contention still subscribes (the watcher above then blocks until
	// the Timeout, which is what a dead server's subscription does).
	_, err = g.Acquire(context.Background(), "k", syncguard.RetryDelay(time.Millisecond), syncguard.Timeout(50*time.Millisecond))
	if driver.CodeOf(err) != driver.AcquisitionTimeout {
		t.Fatalf("contended Acquire: %v; want AcquisitionTimeout", err)
	}
	if got := w.watches.Load(); got != 1 {
		t.Errorf("%d subscriptions after contention; want 1", got)
	}
	l.Close()
}
