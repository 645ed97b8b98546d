package syncguard

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// fakeHandoffDriver is a fake driver with a HandoffWatcher: attempts
// through the waiter are recorded apart from plain ones.
type fakeHandoffDriver struct {
	*fakeDriver
	ch       chan struct{}
	noSignal bool          // do not send the initial signal (ch may be closed)
	renew    time.Duration // Handoff.Renew
	warm     bool          // WarmHandoff returns a waiter
	warms    int

	hmu      sync.Mutex
	watches  int
	stops    int
	queuedAt []int // indexes (in fakeDriver's acquire calls) of waiter attempts
}

func (f *fakeHandoffDriver) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	f.hmu.Lock()
	f.watches++
	f.hmu.Unlock()
	if !f.noSignal {
		f.ch <- struct{}{} // the initial signal
	}
	return &driver.Handoff{
		C: f.ch,
		Acquire: func(ctx context.Context, ttl time.Duration) (driver.AcquireResult, error) {
			f.hmu.Lock()
			f.queuedAt = append(f.queuedAt, len(f.acquires()))
			f.hmu.Unlock()
			return f.Acquire(ctx, key, ttl)
		},
		Stop: func() {
			f.hmu.Lock()
			f.stops++
			f.hmu.Unlock()
		},
		Renew: f.renew,
	}, nil
}

// WarmHandoff returns a waiter when warm is set: its first attempt is the
// caller's first.
func (f *fakeHandoffDriver) WarmHandoff(key string) *driver.Handoff {
	if !f.warm {
		return nil
	}
	f.hmu.Lock()
	f.warms++
	f.hmu.Unlock()
	f.noSignal = true
	h, _ := f.WatchHandoff(context.Background(), key)
	f.noSignal = false
	return h
}

// WatchRelease must not be used when the driver offers WatchHandoff.
func (f *fakeHandoffDriver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	panic("WatchRelease called on a HandoffWatcher")
}

func TestGuardHandoff(t *testing.T) {
	t.Run("waiter_attempts_go_through_the_handoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeHandoffDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), acquiredStep(7)),
				ch:         make(chan struct{}, 1),
			}
			g := newFakeGuard(f)
			time.AfterFunc(40*time.Millisecond, func() { f.ch <- struct{}{} }) // the grant
			start := time.Now()
			l, err := g.Acquire(context.Background(), "k", RetryDelay(time.Second), Backoff(BackoffFixed), Jitter(JitterNone))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if d := time.Since(start); d != 40*time.Millisecond {
				t.Errorf("acquired after %v; want 40ms (woken by the hand-off)", d)
			}
			if FenceOf(l) != 7 {
				t.Errorf("fence %v; want 7", FenceOf(l))
			}
			f.hmu.Lock()
			defer f.hmu.Unlock()
			// attempt 1 plain; attempt 2 (at once, on the initial signal)
			// and 3 (on the grant) through the waiter.
			if f.watches != 1 || f.stops != 1 {
				t.Errorf("watches = %d, stops = %d; want 1, 1", f.watches, f.stops)
			}
			if len(f.queuedAt) != 2 || f.queuedAt[0] != 1 || f.queuedAt[1] != 2 {
				t.Errorf("waiter attempts at %v; want [1 2]", f.queuedAt)
			}
			if gaps := f.acquireGaps(); len(gaps) != 2 || gaps[0] != 0 || gaps[1] != 40*time.Millisecond {
				t.Errorf("gaps %v; want [0 40ms]", gaps)
			}
		})
	})

	t.Run("closed_channel_falls_back_to_backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan struct{})
			close(ch)
			f := &fakeHandoffDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), acquiredStep(1)),
				ch:         ch,
				noSignal:   true,
			}
			g := newFakeGuard(f)
			l, err := g.Acquire(context.Background(), "k", RetryDelay(100*time.Millisecond), Backoff(BackoffFixed), Jitter(JitterNone))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// The close is one last wake-up (retry at once); then plain
			// backoff, no resubscription. The attempts still go through
			// the waiter: they renew its place and claim a lock granted to
			// it while its messages are lost.
			if gaps := f.acquireGaps(); len(gaps) != 2 || gaps[0] != 0 || gaps[1] != 100*time.Millisecond {
				t.Errorf("gaps %v; want [0 100ms]", gaps)
			}
			f.hmu.Lock()
			defer f.hmu.Unlock()
			if f.watches != 1 || f.stops != 1 || len(f.queuedAt) != 2 {
				t.Errorf("watches = %d, stops = %d, waiter attempts %v; want 1, 1, [1 2]", f.watches, f.stops, f.queuedAt)
			}
		})
	})

	t.Run("warm_subscription_queues_from_the_first_attempt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeHandoffDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), acquiredStep(4)),
				ch:         make(chan struct{}, 1),
				warm:       true,
			}
			g := newFakeGuard(f)
			time.AfterFunc(25*time.Millisecond, func() { f.ch <- struct{}{} }) // the grant
			l, err := g.Acquire(context.Background(), "k", RetryDelay(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if gaps := f.acquireGaps(); !slices.Equal(gaps, []time.Duration{25 * time.Millisecond}) {
				t.Errorf("gaps %v; want [25ms]: no plain attempt, no initial signal", gaps)
			}
			f.hmu.Lock()
			defer f.hmu.Unlock()
			if f.warms != 1 || f.watches != 1 || f.stops != 1 || !slices.Equal(f.queuedAt, []int{0, 1}) {
				t.Errorf("warms %d, watches %d, stops %d, waiter attempts %v; want 1, 1, 1, [0 1]", f.warms, f.watches, f.stops, f.queuedAt)
			}
		})
	})

	t.Run("try_acquire_never_queues", func(t *testing.T) {
		f := &fakeHandoffDriver{fakeDriver: newFakeDriver().onAcquire(contendedStep()), ch: make(chan struct{}, 1), warm: true}
		g := newFakeGuard(f)
		if _, err := g.TryAcquire(context.Background(), "k"); !errors.Is(err, ErrLocked) {
			t.Fatalf("TryAcquire = %v; want ErrLocked", err)
		}
		f.hmu.Lock()
		defer f.hmu.Unlock()
		if f.warms != 0 || f.watches != 0 || len(f.queuedAt) != 0 {
			t.Errorf("warms %d, watches %d, waiter attempts %v; want none", f.warms, f.watches, f.queuedAt)
		}
	})

	t.Run("renew_caps_the_backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeHandoffDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), contendedStep(), contendedStep(), acquiredStep(2)),
				ch:         make(chan struct{}, 1),
				renew:      300 * time.Millisecond,
			}
			g := newFakeGuard(f)
			l, err := g.Acquire(context.Background(), "k", RetryDelay(10*time.Second), Backoff(BackoffFixed), Jitter(JitterNone), Timeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// Attempt 1 plain, 2 at once on the initial signal, then every
			// Renew (not every 10 s) so that the waiter keeps its place.
			want := []time.Duration{0, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
			if gaps := f.acquireGaps(); !slices.Equal(gaps, want) {
				t.Errorf("gaps %v; want %v", gaps, want)
			}
		})
	})

	t.Run("with_observer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeHandoffDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), acquiredStep(3)),
				ch:         make(chan struct{}, 1),
			}
			rec := &eventRecorder{}
			g := newFakeGuard(f, WithObserver(rec))
			time.AfterFunc(10*time.Millisecond, func() { f.ch <- struct{}{} })
			l, err := g.Acquire(context.Background(), "k", RetryDelay(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			f.hmu.Lock()
			waiterAttempts := len(f.queuedAt)
			f.hmu.Unlock()
			if waiterAttempts != 2 {
				t.Errorf("%d attempts through the waiter; want 2 (the observed Guard still uses WatchHandoff)", waiterAttempts)
			}
			var acquires, ok int
			for _, e := range rec.snapshot() {
				if e.Type == EventAcquire {
					acquires++
					if e.Result == ResultOK {
						ok++
					}
				}
			}
			if acquires != 3 || ok != 1 {
				t.Errorf("%d acquire events (%d ok); want 3 (1 ok): the waiter's attempts are reported too", acquires, ok)
			}
		})
	})

	t.Run("observed_without_handoff_support_uses_watch_release", func(t *testing.T) {
		w := &fakeWatchDriver{fakeDriver: newFakeDriver()}
		g := newFakeGuard(w, WithObserver(&eventRecorder{}))
		if g.handoff != nil {
			t.Error("observed Guard has a hand-off watcher though its driver has none")
		}
		if g.watcher == nil {
			t.Error("Guard lost the driver's WatchRelease")
		}
	})
}

// TestGuardTimeoutBoundsSubscribing: a wake-up subscription that does not
// come up (a LISTEN connection refused, a subscription stuck) cannot hold
// Acquire past its Timeout: the subscribe call gets a context that ends
// with the Timeout.
func TestGuardTimeoutBoundsSubscribing(t *testing.T) {
	stuck := func(ctx context.Context) error {
		<-ctx.Done()
		return driver.ContextError(ctx.Err())
	}
	for _, kind := range []string{"handoff", "release"} {
		t.Run(kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fd := newFakeDriver().onAcquire(contendedStep())
				var d driver.Driver[fakeCaps]
				if kind == "handoff" {
					d = &stuckHandoffDriver{fakeDriver: fd, stuck: stuck}
				} else {
					d = &fakeWatchDriver{fakeDriver: fd, watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
						return nil, nil, stuck(ctx)
					}}
				}
				g := newFakeGuard(d)
				start := time.Now()
				_, err := g.Acquire(context.Background(), "k", Timeout(200*time.Millisecond), RetryDelay(50*time.Millisecond),
					Backoff(BackoffFixed), Jitter(JitterNone))
				if driver.CodeOf(err) != driver.AcquisitionTimeout {
					t.Fatalf("Acquire = %v; want AcquisitionTimeout", err)
				}
				if took := time.Since(start); took != 200*time.Millisecond {
					t.Errorf("Acquire returned after %v; want at its 200ms Timeout", took)
				}
			})
		})
	}
}

// stuckHandoffDriver is a HandoffWatcher whose WatchHandoff runs stuck.
type stuckHandoffDriver struct {
	*fakeDriver
	stuck func(ctx context.Context) error
}

func (s *stuckHandoffDriver) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	return nil, s.stuck(ctx)
}

func (s *stuckHandoffDriver) WarmHandoff(key string) *driver.Handoff { return nil }
