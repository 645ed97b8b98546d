package syncguard_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
)

var _ sync.Locker = (*syncguard.DistributedMutex[memory.Capabilities])(nil)

// fastWait makes contended acquisitions poll quickly in tests.
var fastWait = syncguard.WithAcquireOptions(syncguard.RetryDelay(5*time.Millisecond), syncguard.Timeout(time.Second))

func newMutex[C driver.Capabilities](t *testing.T, g *syncguard.Guard[C], key string, opts ...syncguard.Option) *syncguard.DistributedMutex[C] {
	t.Helper()
	m, err := syncguard.NewMutex(g, key, append([]syncguard.Option{fastWait}, opts...)...)
	if err != nil {
		t.Fatalf("NewMutex: %v", err)
	}
	return m
}

// TestMutexExclusion: goroutines of two "processes" (two Guards, two
// mutexes of one key) never overlap in the critical section, and each
// hold gets a larger fence than the one before.
func TestMutexExclusion(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			m1 := newMutex(t, d.NewGuard(), "mx:excl")
			m2 := newMutex(t, d.NewGuard(), "mx:excl")
			var (
				inside, overlaps atomic.Int32
				mu               sync.Mutex
				fences           []syncguard.Fence
				wg               sync.WaitGroup
			)
			const perMutex, rounds = 4, 5
			for i := range 2 * perMutex {
				m := m1
				if i%2 == 1 {
					m = m2
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds {
						m.Lock()
						if inside.Add(1) != 1 {
							overlaps.Add(1)
						}
						f := syncguard.FenceOf(m.Lease())
						mu.Lock()
						fences = append(fences, f)
						mu.Unlock()
						time.Sleep(time.Millisecond)
						inside.Add(-1)
						m.Unlock()
					}
				}()
			}
			wg.Wait()
			if n := overlaps.Load(); n != 0 {
				t.Fatalf("%d overlapping critical sections", n)
			}
			if len(fences) != 2*perMutex*rounds {
				t.Fatalf("got %d holds", len(fences))
			}
			for i := 1; i < len(fences); i++ {
				if fences[i] <= fences[i-1] {
					t.Fatalf("fence %d = %s after %s: not increasing", i, fences[i], fences[i-1])
				}
			}
		})
	}
}

// countingDriver counts Acquire calls of a memory driver.
type countingDriver struct {
	*memory.Driver
	acquires atomic.Int32
	fail     atomic.Int32 // fail this many Acquire calls with ServiceUnavailable
}

func (c *countingDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	c.acquires.Add(1)
	if c.fail.Add(-1) >= 0 {
		return driver.AcquireResult{}, driver.NewError(driver.ServiceUnavailable, "down")
	}
	return c.Driver.Acquire(ctx, key, ttl)
}

func (c *countingDriver) Unwrap() driver.Backend { return c.Driver }

// TestMutexLocalQueue: goroutines of one process queue locally, so the
// backend sees exactly one acquisition per hold — never a contended one.
func TestMutexLocalQueue(t *testing.T) {
	t.Parallel()
	d := &countingDriver{Driver: memory.New()}
	m := newMutex(t, syncguard.New[memory.Capabilities](d), "mx:queue")
	var wg sync.WaitGroup
	const n = 20
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Lock()
			time.Sleep(time.Millisecond)
			m.Unlock()
		}()
	}
	wg.Wait()
	if got := d.acquires.Load(); got != n {
		t.Errorf("backend acquisitions = %d, want %d (one per hold)", got, n)
	}
}

func TestMutexTryLock(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			m1 := newMutex(t, d.NewGuard(), "mx:try")
			m2 := newMutex(t, d.NewGuard(), "mx:try")
			if !m1.TryLock() {
				t.Fatal("TryLock of a free mutex failed")
			}
			if m1.TryLock() {
				t.Error("TryLock of a locally held mutex succeeded")
			}
			if m2.TryLock() {
				t.Error("TryLock of a remotely held mutex succeeded")
			}
			m1.Unlock()
			if !m2.TryLock() {
				t.Error("TryLock after Unlock failed")
			}
			m2.Unlock()
		})
	}
}

// TestMutexTryLockContext: TryLockContext tells a held mutex (false, nil)
// from a failure to find out (false, error), which TryLock cannot.
func TestMutexTryLockContext(t *testing.T) {
	t.Parallel()
	d := &countingDriver{Driver: memory.New()}
	var reported []error
	g := syncguard.New[memory.Capabilities](d)
	m1 := newMutex(t, g, "mx:trylockctx", syncguard.WithOnError(func(err error) { reported = append(reported, err) }))
	m2 := newMutex(t, g, "mx:trylockctx")
	ctx := t.Context()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	type result struct {
		OK   bool
		Code driver.Code // 0: no error
	}
	try := func(m *syncguard.DistributedMutex[memory.Capabilities], ctx context.Context) result {
		ok, err := m.TryLockContext(ctx)
		r := result{OK: ok}
		if err != nil {
			r.Code = driver.CodeOf(err)
		}
		return r
	}
	d.fail.Store(1)
	if got, want := try(m1, ctx), (result{Code: driver.ServiceUnavailable}); got != want {
		t.Errorf("TryLockContext on a failing backend = %+v; want %+v", got, want)
	}
	//nolint:staticcheck // a nil context is the point.
	if got, want := try(m1, nil), (result{Code: driver.InvalidArgument}); got != want {
		t.Errorf("TryLockContext(nil) = %+v; want %+v", got, want)
	}
	if got, want := try(m1, cancelled), (result{Code: driver.Aborted}); got != want {
		t.Errorf("TryLockContext(cancelled) = %+v; want %+v", got, want)
	}
	if got, want := try(m1, ctx), (result{OK: true}); got != want {
		t.Fatalf("TryLockContext of a free mutex = %+v; want %+v", got, want)
	}
	if got, want := try(m1, ctx), (result{}); got != want {
		t.Errorf("TryLockContext of a locally held mutex = %+v; want %+v", got, want)
	}
	if got, want := try(m2, ctx), (result{}); got != want {
		t.Errorf("TryLockContext of a remotely held mutex = %+v; want %+v", got, want)
	}
	m1.Unlock()
	if len(reported) != 0 {
		t.Errorf("the error handler was called with %v; TryLockContext returns its errors", reported)
	}
}

func TestMutexLockContext(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			holder := newMutex(t, d.NewGuard(), "mx:ctx")
			waiter := newMutex(t, d.NewGuard(), "mx:ctx")
			if err := holder.LockContext(context.Background()); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := waiter.LockContext(ctx); !errors.Is(err, syncguard.ErrNetworkTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("LockContext past deadline = %v, want NetworkTimeout", err)
			}
			cctx, ccancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, ccancel)
			if err := waiter.LockContext(cctx); !errors.Is(err, syncguard.ErrAborted) {
				t.Errorf("LockContext cancelled = %v, want Aborted", err)
			}
			if waiter.Lease() != nil {
				t.Error("failed LockContext left the mutex held")
			}

			// A waiter gets the lock once the holder unlocks, and keeps
			// it after its own ctx ends.
			wctx, wcancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- waiter.LockContext(wctx) }()
			time.Sleep(20 * time.Millisecond)
			holder.Unlock()
			if err := <-done; err != nil {
				t.Fatalf("LockContext after unlock: %v", err)
			}
			wcancel()
			if err := waiter.Context().Err(); err != nil {
				t.Errorf("hold's context ended with the LockContext ctx: %v", err)
			}
			if holder.TryLock() {
				t.Error("lock free after waiter's ctx ended")
			}
			if err := waiter.UnlockContext(context.Background()); err != nil {
				t.Errorf("UnlockContext: %v", err)
			}
		})
	}
}

// TestMutexLost: when the lock is taken away, Lost closes, the hold's
// context is cancelled with ErrLockLost and Unlock reports it.
func TestMutexLost(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			var (
				mu   sync.Mutex
				errs []error
			)
			m := newMutex(t, d.NewGuard(syncguard.WithLogger(discardLogger())), "mx:lost",
				syncguard.WithAcquireOptions(syncguard.TTL(300*time.Millisecond)),
				syncguard.WithOnError(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }))
			if isClosedChan(m.Lost()) == false {
				t.Error("Lost of an unlocked mutex is not closed")
			}
			m.Lock()
			lost, ctx := m.Lost(), m.Context()
			// Take the lock away behind the holder's back.
			if res, err := d.Driver.Release(context.Background(), m.Key(), m.Lease().LockID()); err != nil || !res.OK {
				t.Fatalf("Release behind the back = %+v, %v", res, err)
			}
			select {
			case <-lost:
			case <-time.After(2 * time.Second):
				t.Fatal("Lost not closed after the lock was taken away")
			}
			if !errors.Is(context.Cause(ctx), syncguard.ErrLockLost) {
				t.Errorf("context cause = %v", context.Cause(ctx))
			}
			m.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if len(errs) != 1 || !errors.Is(errs[0], syncguard.ErrLockLost) {
				t.Errorf("handler errors = %v, want one ErrLockLost", errs)
			}
		})
	}
}

// TestMutexLockRetriesBackendErrors: Lock reports backend errors to the
// handler and keeps trying.
func TestMutexLockRetriesBackendErrors(t *testing.T) {
	t.Parallel()
	d := &countingDriver{Driver: memory.New()}
	d.fail.Store(2)
	var got []driver.Code
	m := newMutex(t, syncguard.New[memory.Capabilities](d), "mx:retry",
		// Fail-fast rounds: each backend error ends a round (by default
		// the round retries it; see TestAcquireRidesOutUnavailability).
		syncguard.WithAcquireOptions(syncguard.RetryUnavailable(false)),
		syncguard.WithErrorBackoff(time.Millisecond),
		syncguard.WithOnError(func(err error) { got = append(got, driver.CodeOf(err)) }))
	m.Lock()
	//lint:ignore SA2001 the acquisition's error handling is under test, not the section
	m.Unlock()
	if diff := cmp.Diff([]driver.Code{driver.ServiceUnavailable, driver.ServiceUnavailable}, got); diff != "" {
		t.Errorf("handler codes (-want +got):\n%s", diff)
	}
	// TryLock reports a backend error and returns false.
	d.fail.Store(1)
	got = nil
	if m.TryLock() {
		t.Error("TryLock succeeded on a failing backend")
	}
	if len(got) != 1 {
		t.Errorf("TryLock reported %v", got)
	}
}

func TestMutexUnlockUnlockedPanics(t *testing.T) {
	t.Parallel()
	m := newMutex(t, syncguard.New(memory.New()), "mx:panic")
	defer func() {
		if r := recover(); r == nil {
			t.Error("Unlock of an unlocked mutex did not panic")
		}
	}()
	m.Unlock()
}

func TestNewMutexInvalid(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())
	tests := []struct {
		name string
		g    *syncguard.Guard[memory.Capabilities]
		key  string
		opts []syncguard.Option
	}{
		{"nil guard", nil, "k", nil},
		{"empty key", g, "", nil},
		{"bad utf8", g, "\xff", nil},
		{"bad ttl", g, "k", []syncguard.Option{syncguard.WithAcquireOptions(syncguard.TTL(-1))}},
		{"bad retry delay", g, "k", []syncguard.Option{syncguard.WithErrorBackoff(0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := syncguard.NewMutex(tc.g, tc.key, tc.opts...)
			if m != nil || !errors.Is(err, syncguard.ErrInvalidArgument) {
				t.Errorf("NewMutex = %v, %v; want InvalidArgument", m, err)
			}
		})
	}
	m := newMutex(t, g, "k")
	var nilCtx context.Context
	if err := m.LockContext(nilCtx); !errors.Is(err, syncguard.ErrInvalidArgument) {
		t.Errorf("LockContext(nil) = %v", err)
	}
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkMutexLockUnlock measures one uncontended Lock/Unlock pair: an
// acquisition and a release on the backend, plus the lease's heartbeat
// goroutine start and stop.
func BenchmarkMutexLockUnlock(b *testing.B) {
	for _, d := range drivertest.Drivers(b) {
		b.Run(d.Name, func(b *testing.B) {
			m, err := syncguard.NewMutex(d.NewGuard(), "bench:mutex")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				m.Lock()
				//lint:ignore SA2001 the benchmark measures Lock and Unlock
				m.Unlock()
			}
		})
	}
}

// BenchmarkMutexLockUnlockParallel: goroutines of one process share one
// mutex; they queue locally, so the backend sees one acquisition at a
// time.
func BenchmarkMutexLockUnlockParallel(b *testing.B) {
	for _, d := range drivertest.Drivers(b) {
		b.Run(d.Name, func(b *testing.B) {
			m, err := syncguard.NewMutex(d.NewGuard(), "bench:mutex:par")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.Lock()
					//lint:ignore SA2001 the benchmark measures Lock and Unlock
					m.Unlock()
				}
			})
		})
	}
}
