package syncguard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
)

// TestFencedWriterStaleHolder is the proof test: holder A acquires with a
// short TTL and pauses past it; B acquires and writes; A wakes and writes.
// A's write is refused with ErrStaleFence and B's value survives — on
// every driver.
func TestFencedWriterStaleHolder(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			g := d.NewGuard()
			w, err := syncguard.NewFencedWriter(g)
			if err != nil {
				t.Fatal(err)
			}
			a, err := g.Acquire(ctx, "account:7", syncguard.TTL(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if err := w.Write(ctx, a, "account:7/balance", []byte("100 (A, before the pause)")); err != nil {
				t.Fatalf("A's first write: %v", err)
			}

			// A pauses; B gets the lock once A's lease is past TTL and
			// tolerance.
			b, err := g.Acquire(ctx, "account:7", syncguard.TTL(10*time.Second),
				syncguard.RetryDelay(50*time.Millisecond), syncguard.Backoff(syncguard.BackoffFixed),
				syncguard.MaxRetries(200), syncguard.Timeout(5*time.Second))
			if err != nil {
				t.Fatalf("B's acquire: %v", err)
			}
			defer b.Close()
			if fa, fb := syncguard.FenceOf(a), syncguard.FenceOf(b); fb <= fa {
				t.Fatalf("B's fence %s not above A's %s", fb, fa)
			}
			if err := w.Write(ctx, b, "account:7/balance", []byte("250 (B)")); err != nil {
				t.Fatalf("B's write: %v", err)
			}

			// A wakes up and writes with its stale lease.
			err = w.Write(ctx, a, "account:7/balance", []byte("90 (A, stale)"))
			if !errors.Is(err, syncguard.ErrStaleFence) {
				t.Fatalf("A's stale write = %v, want ErrStaleFence", err)
			}
			rec, err := w.Read(ctx, "account:7/balance")
			if err != nil {
				t.Fatal(err)
			}
			want := &driver.Record{Value: []byte("250 (B)"), Fence: syncguard.FenceOf(b)}
			if diff := cmp.Diff(want, rec); diff != "" {
				t.Errorf("stored record (-want +got):\n%s", diff)
			}
			// B may write again with its own fence.
			if err := w.Write(ctx, b, "account:7/balance", []byte("260 (B)")); err != nil {
				t.Errorf("B's second write: %v", err)
			}
		})
	}
}

// mapStore is a FencedStore in a map, to show the interface.
type mapStore struct {
	mu   sync.Mutex
	recs map[string]driver.Record
}

func (s *mapStore) WriteFenced(ctx context.Context, resource string, fence syncguard.Fence, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.recs[resource]; ok && cur.Fence > fence {
		return syncguard.ErrStaleFence
	}
	s.recs[resource] = driver.Record{Value: append([]byte(nil), value...), Fence: fence}
	return nil
}

func (s *mapStore) ReadFenced(ctx context.Context, resource string) (*driver.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.recs[resource]; ok {
		return &r, nil
	}
	return nil, nil
}

func TestFencedWriterCustomStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := syncguard.New(memory.New())
	store := &mapStore{recs: map[string]driver.Record{}}
	w, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(store))
	if err != nil {
		t.Fatal(err)
	}
	l1, _ := g.TryAcquire(ctx, "r")
	_, _ = l1.Release(ctx)
	l2, _ := g.TryAcquire(ctx, "r")
	defer l2.Close()
	if err := w.Write(ctx, l2, "r", []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, l1, "r", []byte("old")); !errors.Is(err, syncguard.ErrStaleFence) {
		t.Errorf("stale write = %v", err)
	}
	if rec, _ := w.Read(ctx, "r"); rec == nil || string(rec.Value) != "new" {
		t.Errorf("Read = %+v", rec)
	}
}

// TestFencedWriterTTL: values of the driver-backed store may expire.
func TestFencedWriterTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	g := syncguard.New(memory.New(memory.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })))
	w, err := syncguard.NewFencedWriter(g, syncguard.WithRetention(time.Minute), syncguard.WithPrefix("f2:"))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := g.TryAcquire(ctx, "r")
	defer l.Close()
	if err := w.Write(ctx, l, "r", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if rec, err := w.Read(ctx, "r"); rec != nil || err != nil {
		t.Errorf("Read after TTL = %+v, %v", rec, err)
	}
}

func TestFencedWriterInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := syncguard.New(memory.New())
	var nilGuard *syncguard.Guard[memory.Capabilities]
	for name, call := range map[string]func() error{
		"nil guard": func() error { _, err := syncguard.NewFencedWriter(nilGuard); return err },
		"nil store": func() error { _, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(nil)); return err },
		"bad ttl": func() error {
			_, err := syncguard.NewFencedWriter(g, syncguard.WithRetention(-time.Second))
			return err
		},
	} {
		if err := call(); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	w, _ := syncguard.NewFencedWriter(g)
	l, _ := g.TryAcquire(ctx, "r")
	defer l.Close()
	var nilCtx context.Context
	for name, call := range map[string]func() error{
		"nil lease":      func() error { return w.Write(ctx, nil, "r", nil) },
		"nil ctx":        func() error { return w.Write(nilCtx, l, "r", nil) },
		"empty resource": func() error { return w.Write(ctx, l, "", nil) },
		"read empty":     func() error { _, err := w.Read(ctx, ""); return err },
		"read nil ctx":   func() error { _, err := w.Read(nilCtx, "r"); return err },
	} {
		if err := call(); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}
