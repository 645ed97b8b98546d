package firestore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// The primitives of the core module on the Firestore driver. (The core
// module's primitive tests cannot import this module; these cover the
// same proofs here.)

// TestPrimitiveFencedWriterStaleHolder: A pauses past its TTL, B acquires
// and writes, A's late write is refused and B's value survives.
func TestPrimitiveFencedWriterStaleHolder(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	g := syncguard.New(d)
	w, err := syncguard.NewFencedWriter(g)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := g.Acquire(ctx, "account:7", syncguard.TTL(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := w.Write(ctx, a, "account:7/balance", []byte("100 (A)")); err != nil {
		t.Fatalf("A's first write: %v", err)
	}
	b, err := g.Acquire(ctx, "account:7", syncguard.TTL(10*time.Second),
		syncguard.RetryDelay(100*time.Millisecond), syncguard.Backoff(syncguard.BackoffFixed),
		syncguard.MaxRetries(200), syncguard.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("B's acquire: %v", err)
	}
	defer b.Close()
	if err := w.Write(ctx, b, "account:7/balance", []byte("250 (B)")); err != nil {
		t.Fatalf("B's write: %v", err)
	}
	if err := w.Write(ctx, a, "account:7/balance", []byte("90 (A, stale)")); !errors.Is(err, syncguard.ErrStaleFence) {
		t.Fatalf("A's stale write = %v; want ErrStaleFence", err)
	}
	rec, err := w.Read(ctx, "account:7/balance")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&driver.Record{Value: []byte("250 (B)"), Fence: syncguard.FenceOf(b)}, rec); diff != "" {
		t.Errorf("stored record (-want +got):\n%s", diff)
	}
}

// TestPrimitiveOncePerKey: concurrent callers of one key run fn once and
// all get its result.
func TestPrimitiveOncePerKey(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	once, err := syncguard.NewOncePerKey[string](syncguard.New(d))
	if err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			v, err := once.Do(ctx, "webhook:42", func(context.Context) (string, error) {
				runs.Add(1)
				time.Sleep(50 * time.Millisecond)
				return "charged", nil
			})
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			results[i] = v
		})
	}
	wg.Wait()
	if n := runs.Load(); n != 1 {
		t.Errorf("fn ran %d times; want 1", n)
	}
	if diff := cmp.Diff([]string{"charged", "charged", "charged", "charged"}, results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// TestPrimitiveMutexAndLimiter: the mutex excludes goroutines; the rate
// limiter grants exactly the burst.
func TestPrimitiveMutexAndLimiter(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	m, err := syncguard.NewMutex(syncguard.New(d), "mutex")
	if err != nil {
		t.Fatal(err)
	}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 2 {
				m.Lock()
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				m.Unlock()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d overlaps under the mutex", n)
	}
	l, err := syncguard.NewRateLimiter(d, driver.RateLimit{Limit: 5, Period: time.Hour, Burst: 5})
	if err != nil {
		t.Fatal(err)
	}
	granted := 0
	for range 8 {
		ok, err := l.Allow(context.Background(), "user:1")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			granted++
		}
	}
	if granted != 5 {
		t.Errorf("%d of 8 requests granted; want the burst of 5", granted)
	}
}
