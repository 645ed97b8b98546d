package syncguard_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
)

type receipt struct {
	ID     string
	Amount int
}

func newOnce[T any, C syncguard.Fenced](t *testing.T, g *syncguard.Guard[C], opts ...syncguard.Option) *syncguard.OncePerKey[T, C] {
	t.Helper()
	opts = append([]syncguard.Option{syncguard.WithAcquireOptions(syncguard.RetryDelay(5 * time.Millisecond))}, opts...)
	o, err := syncguard.NewOncePerKey[T](g, opts...)
	if err != nil {
		t.Fatalf("NewOncePerKey: %v", err)
	}
	return o
}

// TestOnceConcurrent: callers in two "processes" race on one key; fn runs
// once and every caller gets its result.
func TestOnceConcurrent(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			onces := []*syncguard.OncePerKey[receipt, syncguard.Fenced]{
				newOnce[receipt](t, d.NewGuard()),
				newOnce[receipt](t, d.NewGuard()),
			}
			var runs atomic.Int32
			var wg sync.WaitGroup
			results := make([]receipt, 16)
			errs := make([]error, len(results))
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = onces[i%2].Do(context.Background(), "pay:1", func(ctx context.Context) (receipt, error) {
						n := runs.Add(1)
						time.Sleep(30 * time.Millisecond)
						return receipt{ID: "r" + strconv.Itoa(int(n)), Amount: 42}, nil
					})
				}()
			}
			wg.Wait()
			if n := runs.Load(); n != 1 {
				t.Fatalf("fn ran %d times", n)
			}
			for i := range results {
				if errs[i] != nil {
					t.Errorf("caller %d: %v", i, errs[i])
				}
				if diff := cmp.Diff(receipt{ID: "r1", Amount: 42}, results[i]); diff != "" {
					t.Errorf("caller %d result (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestOnceNonBlocking: while fn runs, a non-blocking caller gets
// ErrInProgress; afterwards it gets the stored result.
func TestOnceNonBlocking(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			runner := newOnce[string](t, d.NewGuard())
			other := newOnce[string](t, d.NewGuard(), syncguard.WithNonBlocking())
			started, finish := make(chan struct{}), make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, err := runner.Do(context.Background(), "job", func(ctx context.Context) (string, error) {
					close(started)
					<-finish
					return "done", nil
				})
				done <- err
			}()
			<-started
			_, err := other.Do(context.Background(), "job", func(ctx context.Context) (string, error) {
				t.Error("fn ran twice")
				return "", nil
			})
			if !errors.Is(err, syncguard.ErrInProgress) {
				t.Errorf("Do while running = %v, want ErrInProgress", err)
			}
			close(finish)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			v, err := other.Do(context.Background(), "job", func(ctx context.Context) (string, error) {
				t.Error("fn ran again")
				return "", nil
			})
			if v != "done" || err != nil {
				t.Errorf("Do after completion = %q, %v", v, err)
			}
		})
	}
}

// TestOnceErrors: a failed fn records nothing by default; with
// WithRecordErrors the failure is replayed.
func TestOnceErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("card declined")
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			tests := []struct {
				name       string
				record     bool
				wantRuns   int32
				wantSecond error
			}{
				{name: "not recorded", record: false, wantRuns: 2, wantSecond: nil},
				{name: "recorded", record: true, wantRuns: 1, wantSecond: &syncguard.RecordedError{Message: "card declined"}},
			}
			for _, tc := range tests {
				o := newOnce[int](t, d.NewGuard(), syncguard.WithRecordErrors(tc.record), syncguard.WithPrefix("once:"+tc.name+":"))
				var runs atomic.Int32
				fn := func(ctx context.Context) (int, error) {
					if runs.Add(1) == 1 {
						return 0, boom
					}
					return 7, nil
				}
				if _, err := o.Do(context.Background(), "k", fn); err != boom {
					t.Errorf("%s: first Do = %v, want fn's error unchanged", tc.name, err)
				}
				v, err := o.Do(context.Background(), "k", fn)
				if diff := cmp.Diff(tc.wantSecond, err, cmp.Comparer(func(a, b error) bool {
					return (a == nil) == (b == nil) && (a == nil || a.Error() == b.Error())
				})); diff != "" {
					t.Errorf("%s: second Do error (-want +got):\n%s", tc.name, diff)
				}
				var rec *syncguard.RecordedError
				if tc.record && !errors.As(err, &rec) {
					t.Errorf("%s: second Do error %T is not a *RecordedError", tc.name, err)
				}
				if !tc.record && v != 7 {
					t.Errorf("%s: second Do = %d", tc.name, v)
				}
				if n := runs.Load(); n != tc.wantRuns {
					t.Errorf("%s: fn ran %d times, want %d", tc.name, n, tc.wantRuns)
				}
			}
		})
	}
}

// TestOnceStaleRunner: runner A stalls past its lease; B takes over and
// finishes; A's late result is refused (ErrStaleFence) and every caller
// sees B's result.
func TestOnceStaleRunner(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			short := syncguard.WithAcquireOptions(syncguard.TTL(100*time.Millisecond), syncguard.AutoExtend(false))
			a := newOnce[string](t, d.NewGuard(), short)
			b := newOnce[string](t, d.NewGuard(), syncguard.WithNonBlocking())
			aStarted, aResume := make(chan struct{}), make(chan struct{})
			aDone := make(chan error, 1)
			go func() {
				_, err := a.Do(context.Background(), "stale", func(ctx context.Context) (string, error) {
					close(aStarted)
					<-aResume
					return "from A", nil
				})
				aDone <- err
			}()
			<-aStarted
			// Wait until A's lease is past TTL + tolerance, then B runs.
			deadline := time.Now().Add(5 * time.Second)
			var (
				v   string
				err error
			)
			for {
				v, err = b.Do(context.Background(), "stale", func(ctx context.Context) (string, error) { return "from B", nil })
				if !errors.Is(err, syncguard.ErrInProgress) || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if v != "from B" || err != nil {
				t.Fatalf("B's Do = %q, %v", v, err)
			}
			close(aResume)
			if err := <-aDone; !errors.Is(err, syncguard.ErrStaleFence) {
				t.Errorf("A's Do = %v, want ErrStaleFence", err)
			}
			v, err = b.Do(context.Background(), "stale", func(ctx context.Context) (string, error) { return "again", nil })
			if v != "from B" || err != nil {
				t.Errorf("later Do = %q, %v; want B's result", v, err)
			}
		})
	}
}

// TestOnceRetention: after the retention time the function runs again
// (memory driver, fake time).
func TestOnceRetention(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		o := newOnce[int](t, syncguard.New(memory.New()), syncguard.WithRetention(time.Hour))
		var runs atomic.Int32
		fn := func(ctx context.Context) (int, error) { return int(runs.Add(1)), nil }
		ctx := context.Background()
		for _, step := range []struct {
			sleep time.Duration
			want  int
		}{{0, 1}, {59 * time.Minute, 1}, {2 * time.Minute, 2}, {time.Minute, 2}} {
			time.Sleep(step.sleep)
			if v, err := o.Do(ctx, "k", fn); v != step.want || err != nil {
				t.Errorf("after %v: Do = %d, %v; want %d", step.sleep, v, err, step.want)
			}
		}
	})
}

// TestOncePanic: a panicking fn propagates the panic and records nothing.
func TestOncePanic(t *testing.T) {
	t.Parallel()
	o := newOnce[int](t, syncguard.New(memory.New()))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v", r)
			}
		}()
		_, _ = o.Do(context.Background(), "k", func(ctx context.Context) (int, error) { panic("boom") })
	}()
	if v, err := o.Do(context.Background(), "k", func(ctx context.Context) (int, error) { return 3, nil }); v != 3 || err != nil {
		t.Errorf("Do after panic = %d, %v", v, err)
	}
}

// TestOnceWaitCancelled: a blocking waiter gives up when its ctx ends.
func TestOnceWaitCancelled(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())
	o := newOnce[int](t, g)
	started, finish := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = o.Do(context.Background(), "k", func(ctx context.Context) (int, error) {
			close(started)
			<-finish
			return 1, nil
		})
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := o.Do(ctx, "k", func(ctx context.Context) (int, error) { return 2, nil }); !errors.Is(err, syncguard.ErrNetworkTimeout) {
		t.Errorf("Do past deadline = %v, want NetworkTimeout", err)
	}
	close(finish)
	wg.Wait()
}

// upperCodec is a Codec that proves the codec is pluggable.
type upperCodec struct{ calls *atomic.Int32 }

func (c upperCodec) Marshal(v any) ([]byte, error) {
	c.calls.Add(1)
	return json.Marshal(v)
}

func (c upperCodec) Unmarshal(b []byte, v any) error {
	c.calls.Add(1)
	return json.Unmarshal(b, v)
}

func TestOnceCodec(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	o := newOnce[receipt](t, syncguard.New(memory.New()), syncguard.WithCodec(upperCodec{&calls}))
	for range 2 {
		if v, err := o.Do(context.Background(), "k", func(ctx context.Context) (receipt, error) { return receipt{ID: "x"}, nil }); v.ID != "x" || err != nil {
			t.Fatalf("Do = %v, %v", v, err)
		}
	}
	if calls.Load() != 2 { // one Marshal, one Unmarshal
		t.Errorf("codec calls = %d", calls.Load())
	}
}

func TestOnceInvalid(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())
	for name, opts := range map[string][]syncguard.Option{
		"retention zero":   {syncguard.WithRetention(0)},
		"retention sub-ms": {syncguard.WithRetention(time.Microsecond)},
		"nil codec":        {syncguard.WithCodec(nil)},
		"bad acquire":      {syncguard.WithAcquireOptions(syncguard.MaxRetries(-1))},
	} {
		if _, err := syncguard.NewOncePerKey[int](g, opts...); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: NewOncePerKey = %v", name, err)
		}
	}
	var nilGuard *syncguard.Guard[memory.Capabilities]
	if _, err := syncguard.NewOncePerKey[int](nilGuard); !errors.Is(err, syncguard.ErrInvalidArgument) {
		t.Errorf("nil guard: %v", err)
	}
	o := newOnce[int](t, g)
	fn := func(ctx context.Context) (int, error) { return 1, nil }
	var nilCtx context.Context
	for name, call := range map[string]func() error{
		"nil ctx":   func() error { _, err := o.Do(nilCtx, "k", fn); return err },
		"nil fn":    func() error { _, err := o.Do(context.Background(), "k", nil); return err },
		"empty key": func() error { _, err := o.Do(context.Background(), "", fn); return err },
		"long key":  func() error { _, err := o.Do(context.Background(), string(make([]byte, 513)), fn); return err },
	} {
		if err := call(); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: Do = %v, want InvalidArgument", name, err)
		}
	}
}
