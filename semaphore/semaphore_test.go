package semaphore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/semaphore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCapacity: N permits, never more holders, fences that increase.
func TestCapacity(t *testing.T) {
	s, err := semaphore.New(memory.New(), 3)
	if err != nil {
		t.Fatal(err)
	}
	var held, most atomic.Int32
	var mu sync.Mutex
	seen := map[syncguard.Fence]bool{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 5 {
				err := s.Do(t.Context(), "exports/acme", func(ctx context.Context, l *syncguard.Lease[memory.Capabilities]) error {
					n := held.Add(1)
					defer held.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					mu.Lock()
					defer mu.Unlock()
					if f := syncguard.FenceOf(l); seen[f] {
						t.Errorf("fence %v handed out twice", f)
					} else {
						seen[f] = true
					}
					return nil
				}, syncguard.RetryDelay(time.Millisecond), syncguard.MaxRetries(10000), syncguard.Timeout(time.Minute))
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > 3 || m == 0 {
		t.Errorf("at most %d holders; want 1..3", m)
	}
}

func TestTryAcquireAndHeld(t *testing.T) {
	ctx := t.Context()
	s, err := semaphore.New(memory.New(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Permits() != 2 {
		t.Errorf("Permits = %d", s.Permits())
	}
	a, err := s.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(ctx, "k"); !errors.Is(err, syncguard.ErrLocked) {
		t.Fatalf("third TryAcquire: %v; want ErrLocked", err)
	}
	if n, err := s.Held(ctx, "k"); n != 2 || err != nil {
		t.Errorf("Held = %d, %v; want 2", n, err)
	}
	if ok, err := a.Release(ctx); !ok || err != nil {
		t.Errorf("Release = %v, %v", ok, err)
	}
	b.Close()
	if n, err := s.Held(ctx, "k"); n != 0 || err != nil {
		t.Errorf("Held after releases = %d, %v; want 0", n, err)
	}
}

// TestCrashedHolderReturns: a permit that is never released comes back
// after its TTL and the tolerance (an injected clock, no sleep).
func TestCrashedHolderReturns(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	d := memory.New(memory.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	s, err := semaphore.New(d, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(t.Context(), "k", syncguard.TTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TryAcquire(t.Context(), "k"); !errors.Is(err, syncguard.ErrLocked) {
		t.Fatalf("second TryAcquire: %v; want ErrLocked", err)
	}
	mu.Lock()
	now = now.Add(time.Second + driver.Tolerance + time.Millisecond)
	mu.Unlock()
	l, err := s.TryAcquire(t.Context(), "k")
	if err != nil {
		t.Fatalf("after TTL and tolerance: %v", err)
	}
	l.Close()
}

// noPermits is a driver without a permit store.
type noPermits struct {
	driver.Driver[memory.Capabilities]
}

func TestNewInvalid(t *testing.T) {
	for name, fn := range map[string]func() error{
		"zero permits":     func() error { _, err := semaphore.New(memory.New(), 0); return err },
		"too many permits": func() error { _, err := semaphore.New(memory.New(), driver.MaxPermits+1); return err },
		"no permit store":  func() error { _, err := semaphore.New(noPermits{memory.New()}, 1); return err },
		"invalid option":   func() error { _, err := semaphore.New(memory.New(), 1, syncguard.WithReleaseTimeout(-1)); return err },
		"empty key": func() error {
			s, _ := semaphore.New(memory.New(), 1)
			_, err := s.TryAcquire(t.Context(), "")
			return err
		},
		"empty key in Held": func() error { s, _ := semaphore.New(memory.New(), 1); _, err := s.Held(t.Context(), ""); return err },
	} {
		if c := driver.CodeOf(fn()); c != driver.InvalidArgument {
			t.Errorf("%s: code %v; want InvalidArgument", name, c)
		}
	}
}
