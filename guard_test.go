package syncguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/syncguard/syncguard/driver"
	"go.uber.org/goleak"
)

// TestMain checks that no test of the package leaks a goroutine (leases
// start heartbeat goroutines; Close with a dispose timeout starts one per
// release).
//
// The primitives' tests also run on Redis (internal/drivertest): the
// rueidis client keeps a process-wide coarse clock goroutine, and its
// connections' readers end shortly after Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/redis/rueidis/internal/util.(*coarseClock).tick"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundRead"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
	)
}

// ---------------------------------------------------------------------------
// Scripted fake driver
// ---------------------------------------------------------------------------

// fakeCaps is the capability type of fakeDriver: fenced, server time.
type fakeCaps struct {
	driver.WithFencing
	driver.WithServerTime
}

func (fakeCaps) Name() string { return "fake" }

// fakeStep scripts one driver call.
type fakeStep[R any] struct {
	res R
	err error
	// delay is the (fake) time the call takes. The call returns early with
	// ContextError when its ctx ends, unless ignoreCtx is set.
	delay     time.Duration
	ignoreCtx bool
	// panicVal, if not nil, is panicked with after the delay.
	panicVal any
	// before runs at the start of the call.
	before func(ctx context.Context)
}

// fakeCall records the arguments of one driver call.
type fakeCall struct {
	ctx         context.Context
	ctxErr      error // ctx.Err() when the call started
	deadline    time.Time
	hasDeadline bool
	arg         string // key or lock ID
	key         string // the key given with a lock ID (Release, Extend)
	ttl         time.Duration
	at          time.Time
}

// fakeDriver is a scripted Driver[fakeCaps]. Call n of a method uses step n
// of its script; once the script is exhausted its last step repeats, and an
// empty script succeeds (Acquire: acquired with fakeLockID(n), fence n).
type fakeDriver struct {
	mu           sync.Mutex
	acquireSteps []fakeStep[driver.AcquireResult]
	releaseSteps []fakeStep[driver.ReleaseResult]
	extendSteps  []fakeStep[driver.ExtendResult]
	acquireCalls []fakeCall
	releaseCalls []fakeCall
	extendCalls  []fakeCall
	otherCalls   map[string]int

	locked bool
	info   *driver.LockInfo
}

var _ driver.Driver[fakeCaps] = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver { return &fakeDriver{} }

func (f *fakeDriver) onAcquire(steps ...fakeStep[driver.AcquireResult]) *fakeDriver {
	f.acquireSteps = append(f.acquireSteps, steps...)
	return f
}

func (f *fakeDriver) onRelease(steps ...fakeStep[driver.ReleaseResult]) *fakeDriver {
	f.releaseSteps = append(f.releaseSteps, steps...)
	return f
}

func (f *fakeDriver) onExtend(steps ...fakeStep[driver.ExtendResult]) *fakeDriver {
	f.extendSteps = append(f.extendSteps, steps...)
	return f
}

// fakeLockID returns a valid 22-character lock ID for acquisition n.
func fakeLockID(n int) string { return fmt.Sprintf("fake-lock-id-%09d", n) }

// fakeExpiry is the ExpiresAtMs the fake reports for acquisition n.
func fakeExpiry(n int) int64 { return 946_684_830_000 + int64(n) }

func acquiredStep(n int) fakeStep[driver.AcquireResult] {
	return fakeStep[driver.AcquireResult]{res: driver.AcquireResult{
		Acquired: true, LockID: fakeLockID(n), Fence: Fence(n), ExpiresAtMs: fakeExpiry(n),
	}}
}

func contendedStep() fakeStep[driver.AcquireResult] {
	return fakeStep[driver.AcquireResult]{res: driver.AcquireResult{Reason: driver.ReasonLocked}}
}

func (f *fakeDriver) record(calls *[]fakeCall, ctx context.Context, arg string, ttl time.Duration) int {
	c := fakeCall{ctx: ctx, arg: arg, ttl: ttl, at: time.Now()}
	if ctx != nil {
		c.ctxErr = ctx.Err()
		c.deadline, c.hasDeadline = ctx.Deadline()
	}
	*calls = append(*calls, c)
	return len(*calls) - 1
}

func pickStep[R any](steps []fakeStep[R], n int) (fakeStep[R], bool) {
	switch {
	case len(steps) == 0:
		return fakeStep[R]{}, false
	case n < len(steps):
		return steps[n], true
	default:
		return steps[len(steps)-1], true
	}
}

func runStep[R any](ctx context.Context, st fakeStep[R]) (R, error) {
	if st.before != nil {
		st.before(ctx)
	}
	if st.delay > 0 {
		if st.ignoreCtx {
			time.Sleep(st.delay)
		} else {
			tm := time.NewTimer(st.delay)
			defer tm.Stop()
			select {
			case <-ctx.Done():
				var zero R
				return zero, driver.ContextError(ctx.Err())
			case <-tm.C:
			}
		}
	}
	if st.panicVal != nil {
		panic(st.panicVal)
	}
	return st.res, st.err
}

func (f *fakeDriver) Capabilities() fakeCaps { return fakeCaps{} }

func (f *fakeDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	f.mu.Lock()
	n := f.record(&f.acquireCalls, ctx, key, ttl)
	st, ok := pickStep(f.acquireSteps, n)
	f.mu.Unlock()
	if !ok {
		st = acquiredStep(n + 1)
	}
	return runStep(ctx, st)
}

func (f *fakeDriver) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	f.mu.Lock()
	n := f.record(&f.releaseCalls, ctx, lockID, 0)
	f.releaseCalls[n].key = key
	st, ok := pickStep(f.releaseSteps, n)
	f.mu.Unlock()
	if !ok {
		st = fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}}
	}
	return runStep(ctx, st)
}

func (f *fakeDriver) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	f.mu.Lock()
	n := f.record(&f.extendCalls, ctx, lockID, ttl)
	f.extendCalls[n].key = key
	st, ok := pickStep(f.extendSteps, n)
	f.mu.Unlock()
	if !ok {
		st = fakeStep[driver.ExtendResult]{res: driver.ExtendResult{OK: true, ExpiresAtMs: time.Now().Add(ttl).UnixMilli()}}
	}
	return runStep(ctx, st)
}

func (f *fakeDriver) other(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.otherCalls == nil {
		f.otherCalls = map[string]int{}
	}
	f.otherCalls[name]++
}

func (f *fakeDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	f.other("IsLocked")
	return f.locked, nil
}

func (f *fakeDriver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	f.other("LookupByKey")
	return f.info, nil
}

func (f *fakeDriver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	f.other("LookupByID")
	return f.info, nil
}

func (f *fakeDriver) PutRecord(context.Context, string, Fence, []byte, time.Duration) (driver.PutResult, error) {
	return driver.PutResult{}, nil
}

func (f *fakeDriver) GetRecord(context.Context, string) (*driver.Record, error) { return nil, nil }

func (f *fakeDriver) DeleteRecord(context.Context, string, Fence) (bool, error) { return false, nil }

func (f *fakeDriver) AllowN(context.Context, string, RateLimit, int) (RateResult, error) {
	return RateResult{}, nil
}

func (f *fakeDriver) ResetRate(context.Context, string) error { return nil }

func (f *fakeDriver) acquires() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.acquireCalls...)
}

func (f *fakeDriver) releases() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.releaseCalls...)
}

func (f *fakeDriver) extends() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.extendCalls...)
}

// acquireGaps returns the fake-clock time between consecutive Acquire
// calls: the backoff sleeps when the calls themselves take no time.
func (f *fakeDriver) acquireGaps() []time.Duration {
	calls := f.acquires()
	gaps := []time.Duration{}
	for i := 1; i < len(calls); i++ {
		gaps = append(gaps, calls[i].at.Sub(calls[i-1].at))
	}
	return gaps
}

// fakeWatchDriver adds a scripted ReleaseWatcher to fakeDriver.
type fakeWatchDriver struct {
	*fakeDriver
	watch func(ctx context.Context, key string) (<-chan struct{}, func(), error)

	wmu        sync.Mutex
	watchCalls []string
	stops      int
}

func (w *fakeWatchDriver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	w.wmu.Lock()
	w.watchCalls = append(w.watchCalls, key)
	w.wmu.Unlock()
	ch, stop, err := w.watch(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	return ch, func() {
		w.wmu.Lock()
		w.stops++
		w.wmu.Unlock()
		if stop != nil {
			stop()
		}
	}, nil
}

func (w *fakeWatchDriver) counts() (watches, stops int) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return len(w.watchCalls), w.stops
}

// releaseErrInfo is what a release-error callback received besides the
// error.
type releaseErrInfo struct {
	LockID string
	Key    string
}

// releaseErrRecorder records release-error callbacks.
type releaseErrRecorder struct {
	mu    sync.Mutex
	errs  []error
	infos []releaseErrInfo
	at    []time.Time
}

func (r *releaseErrRecorder) record(err error, key, lockID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
	r.infos = append(r.infos, releaseErrInfo{LockID: lockID, Key: key})
	r.at = append(r.at, time.Now())
}

func (r *releaseErrRecorder) snapshot() ([]error, []releaseErrInfo, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...), append([]releaseErrInfo(nil), r.infos...), append([]time.Time(nil), r.at...)
}

// eventRecorder is an Observer collecting events.
type eventRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *eventRecorder) OnEvent(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Latency = 0
	r.events = append(r.events, e)
}

func (r *eventRecorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// newFakeGuard builds a Guard over d with a deterministic jitter source
// (0.5 unless opts override it).
func newFakeGuard(d driver.Driver[fakeCaps], opts ...Option) *Guard[fakeCaps] {
	return New(d, append([]Option{withRandom(func() float64 { return 0.5 })}, opts...)...)
}

// bufLogger returns a logger writing text to a buffer.
func bufLogger() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func requireLockErr(t *testing.T, err error, code driver.Code) *LockError {
	t.Helper()
	var le *LockError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *LockError", err, err)
	}
	if le.Code != code {
		t.Fatalf("code = %v, want %v (error %q)", le.Code, code, err)
	}
	return le
}

// acquireVia runs one acquisition through Do or Acquire and returns its
// error (Do runs a no-op function; Acquire closes the lease).
type acquireVia func(ctx context.Context, g *Guard[fakeCaps], key string, opts ...AcquireOption) error

var acquireVias = []struct {
	name string
	run  acquireVia
}{
	{"do", func(ctx context.Context, g *Guard[fakeCaps], key string, opts ...AcquireOption) error {
		return g.Do(ctx, key, func(context.Context, *Lease[fakeCaps]) error { return nil }, opts...)
	}},
	{"acquire", func(ctx context.Context, g *Guard[fakeCaps], key string, opts ...AcquireOption) error {
		l, err := g.Acquire(ctx, key, opts...)
		if err == nil {
			if l == nil {
				return errors.New("nil lease without error")
			}
			l.Close()
		}
		return err
	}},
}

// ---------------------------------------------------------------------------
// Section I: the Lock helper (Guard.Do, Guard.Acquire)
// ---------------------------------------------------------------------------

func TestGuardDoBasics(t *testing.T) {
	t.Run("case99_first_attempt_success", func(t *testing.T) {
		f := newFakeDriver()
		g := newFakeGuard(f)
		fnErr := errors.New("fn result")
		runs := 0
		err := g.Do(context.Background(), "k99", func(ctx context.Context, l *Lease[fakeCaps]) error {
			runs++
			return fnErr
		})
		if err != fnErr {
			t.Fatalf("Do = %v, want fn's error unchanged", err)
		}
		if runs != 1 {
			t.Fatalf("fn ran %d times", runs)
		}
		if n := len(f.acquires()); n != 1 {
			t.Fatalf("Acquire calls = %d, want 1", n)
		}
		rel := f.releases()
		if len(rel) != 1 || rel[0].arg != fakeLockID(1) {
			t.Fatalf("Release calls = %+v, want one with %q", rel, fakeLockID(1))
		}
		// Success: fn's nil result returned.
		if err := g.Do(context.Background(), "k99", func(context.Context, *Lease[fakeCaps]) error { return nil }); err != nil {
			t.Fatalf("Do = %v", err)
		}
	})

	t.Run("case100_ttl_plumbing", func(t *testing.T) {
		type ctxKey struct{}
		tests := []struct {
			name    string
			opts    []AcquireOption
			wantTTL time.Duration
		}{
			{"default_30s", nil, 30 * time.Second},
			{"explicit_60s", []AcquireOption{TTL(60 * time.Second)}, 60 * time.Second},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for _, via := range acquireVias {
					f := newFakeDriver()
					g := newFakeGuard(f)
					ctx := context.WithValue(context.Background(), ctxKey{}, "v")
					if err := via.run(ctx, g, "cafe\u0301", tc.opts...); err != nil {
						t.Fatalf("%s: %v", via.name, err)
					}
					calls := f.acquires()
					if len(calls) != 1 {
						t.Fatalf("%s: %d Acquire calls", via.name, len(calls))
					}
					c := calls[0]
					if c.ttl != tc.wantTTL {
						t.Errorf("%s: ttl = %v, want %v", via.name, c.ttl, tc.wantTTL)
					}
					if c.arg != "café" {
						t.Errorf("%s: key = %q, want normalised %q", via.name, c.arg, "café")
					}
					if c.ctx.Value(ctxKey{}) != "v" {
						t.Errorf("%s: caller ctx not forwarded to Acquire", via.name)
					}
				}
			})
		}
	})
}

func TestGuardRetryAndBackoff(t *testing.T) {
	busy := contendedStep()
	won := acquiredStep(1)
	ms := time.Millisecond
	slowBusy := contendedStep()
	slowBusy.delay = 101 * ms

	tests := []struct {
		name        string
		steps       []fakeStep[driver.AcquireResult]
		opts        []AcquireOption
		random      float64
		wantCalls   int
		wantSleeps  []time.Duration
		wantCode    driver.Code // 0: success
		wantMsg     string      // prefix of the error message
		wantElapsed time.Duration
	}{
		{
			name:  "case101_retry_until_success",
			steps: []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:  []AcquireOption{MaxRetries(5), RetryDelay(10 * ms)}, random: 0.5,
			wantCalls: 3, wantSleeps: []time.Duration{7500 * time.Microsecond, 15 * ms}, wantElapsed: 22500 * time.Microsecond,
		},
		{
			name:      "case102_retries_exhausted",
			steps:     []fakeStep[driver.AcquireResult]{busy},
			opts:      []AcquireOption{MaxRetries(2), RetryDelay(1 * ms), Timeout(5 * time.Second), Jitter(JitterNone)},
			wantCalls: 3, wantSleeps: []time.Duration{1 * ms, 2 * ms},
			wantCode: driver.AcquisitionTimeout, wantMsg: "failed to acquire lock after 3 attempts", wantElapsed: 3 * ms,
		},
		{
			name:      "case102_max_retries_zero",
			steps:     []fakeStep[driver.AcquireResult]{busy},
			opts:      []AcquireOption{MaxRetries(0)},
			wantCalls: 1, wantCode: driver.AcquisitionTimeout, wantMsg: "failed to acquire lock",
		},
		{
			name:  "case103_overall_timeout",
			steps: []fakeStep[driver.AcquireResult]{busy},
			opts:  []AcquireOption{MaxRetries(1000), RetryDelay(100 * ms), Timeout(50 * ms)}, random: 0.5,
			wantCalls: 1, wantCode: driver.AcquisitionTimeout, wantMsg: "timeout reached while acquiring lock", wantElapsed: 50 * ms,
		},
		{
			name:      "case104_fixed_backoff",
			steps:     []fakeStep[driver.AcquireResult]{busy, busy, busy, won},
			opts:      []AcquireOption{Backoff(BackoffFixed), Jitter(JitterNone), RetryDelay(10 * ms)},
			wantCalls: 4, wantSleeps: []time.Duration{10 * ms, 10 * ms, 10 * ms}, wantElapsed: 30 * ms,
		},
		{
			name:      "case105_exponential_backoff",
			steps:     []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:      []AcquireOption{Jitter(JitterNone), RetryDelay(5 * ms)},
			wantCalls: 3, wantSleeps: []time.Duration{5 * ms, 10 * ms}, wantElapsed: 15 * ms,
		},
		{
			name:      "case105_exponential_general",
			steps:     []fakeStep[driver.AcquireResult]{busy, busy, busy, busy, busy, won},
			opts:      []AcquireOption{Backoff(BackoffExponential), Jitter(JitterNone), RetryDelay(5 * ms)},
			wantCalls: 6, wantSleeps: []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms}, wantElapsed: 155 * ms,
		},
		{
			name:  "case106_full_jitter",
			steps: []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:  []AcquireOption{Backoff(BackoffFixed), Jitter(JitterFull), RetryDelay(100 * ms)}, random: 0.25,
			wantCalls: 3, wantSleeps: []time.Duration{25 * ms, 25 * ms}, wantElapsed: 50 * ms,
		},
		{
			name:  "case107_equal_jitter",
			steps: []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:  []AcquireOption{Backoff(BackoffFixed), Jitter(JitterEqual), RetryDelay(100 * ms)}, random: 0.5,
			wantCalls: 3, wantSleeps: []time.Duration{75 * ms, 75 * ms}, wantElapsed: 150 * ms,
		},
		{
			name:  "case107_equal_jitter_is_default_lower_bound",
			steps: []fakeStep[driver.AcquireResult]{busy, busy, busy, won},
			opts:  []AcquireOption{RetryDelay(100 * ms)}, random: 0,
			wantCalls: 4, wantSleeps: []time.Duration{50 * ms, 100 * ms, 200 * ms}, wantElapsed: 350 * ms,
		},
		{
			name:      "case108_no_time_left",
			steps:     []fakeStep[driver.AcquireResult]{slowBusy},
			opts:      []AcquireOption{Timeout(100 * ms), RetryDelay(10 * ms), Backoff(BackoffFixed), Jitter(JitterNone)},
			wantCalls: 1, wantCode: driver.AcquisitionTimeout, wantMsg: "timeout reached before next retry", wantElapsed: 101 * ms,
		},
		{
			name:      "case108_delay_clamped",
			steps:     []fakeStep[driver.AcquireResult]{busy},
			opts:      []AcquireOption{Timeout(300 * ms), RetryDelay(200 * ms), Jitter(JitterNone)},
			wantCalls: 2, wantSleeps: []time.Duration{200 * ms}, wantCode: driver.AcquisitionTimeout,
			wantMsg: "timeout reached while acquiring lock", wantElapsed: 300 * ms,
		},
		{
			name:      "case121_zero_delay_retries_at_once",
			steps:     []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:      []AcquireOption{RetryDelay(0)},
			wantCalls: 3, wantSleeps: []time.Duration{0, 0},
		},
		{
			name:  "case121_full_jitter_zero_draw_retries_at_once",
			steps: []fakeStep[driver.AcquireResult]{busy, busy, won},
			opts:  []AcquireOption{RetryDelay(100 * ms), Jitter(JitterFull)}, random: 0,
			wantCalls: 3, wantSleeps: []time.Duration{0, 0},
		},
	}
	for _, tc := range tests {
		for _, via := range acquireVias {
			t.Run(tc.name+"/"+via.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := newFakeDriver().onAcquire(tc.steps...)
					g := New(f, withRandom(func() float64 { return tc.random }))
					start := time.Now()
					err := via.run(context.Background(), g, "retry-key", tc.opts...)
					elapsed := time.Since(start)
					if tc.wantCode == 0 {
						if err != nil {
							t.Fatalf("error = %v, want success", err)
						}
					} else {
						le := requireLockErr(t, err, tc.wantCode)
						if !strings.HasPrefix(le.Message, tc.wantMsg) {
							t.Errorf("message = %q, want prefix %q", le.Message, tc.wantMsg)
						}
						if !errors.Is(err, ErrAcquisitionTimeout) || !errors.Is(err, ErrLocked) {
							t.Errorf("error %v must match ErrAcquisitionTimeout and ErrLocked", err)
						}
						if le.Key != "retry-key" {
							t.Errorf("error key = %q", le.Key)
						}
					}
					if got := len(f.acquires()); got != tc.wantCalls {
						t.Errorf("Acquire calls = %d, want %d", got, tc.wantCalls)
					}
					if tc.wantSleeps != nil || tc.wantCalls > 1 {
						if diff := cmp.Diff(tc.wantSleeps, f.acquireGaps(), cmpopts.EquateEmpty()); diff != "" {
							t.Errorf("sleeps (-want +got):\n%s", diff)
						}
					}
					if elapsed != tc.wantElapsed {
						t.Errorf("elapsed = %v, want %v", elapsed, tc.wantElapsed)
					}
				})
			})
		}
	}
}

func TestGuardCancellation(t *testing.T) {
	t.Run("case109_cancelled_before_start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		f := newFakeDriver()
		g := newFakeGuard(f)
		for _, via := range acquireVias {
			err := via.run(ctx, g, "k109")
			requireLockErr(t, err, driver.Aborted)
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrLocked) {
				t.Errorf("%s: error %v must wrap context.Canceled and not match ErrLocked", via.name, err)
			}
		}
		_, err := g.TryAcquire(ctx, "k109")
		requireLockErr(t, err, driver.Aborted)
		if n := len(f.acquires()); n != 0 {
			t.Fatalf("Acquire calls = %d, want 0", n)
		}
	})

	t.Run("case109_deadline_exceeded_before_start", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer cancel()
		f := newFakeDriver()
		g := newFakeGuard(f)
		err := g.Do(ctx, "k109", func(context.Context, *Lease[fakeCaps]) error { return nil })
		requireLockErr(t, err, driver.NetworkTimeout)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v must wrap DeadlineExceeded", err)
		}
		if n := len(f.acquires()); n != 0 {
			t.Fatalf("Acquire calls = %d, want 0", n)
		}
	})

	t.Run("case122_cancellable_backoff", func(t *testing.T) {
		for _, via := range acquireVias {
			t.Run(via.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := newFakeDriver().onAcquire(contendedStep())
					g := newFakeGuard(f)
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					time.AfterFunc(50*time.Millisecond, cancel)
					start := time.Now()
					err := via.run(ctx, g, "k122", RetryDelay(time.Second), Backoff(BackoffFixed), Jitter(JitterNone))
					elapsed := time.Since(start)
					requireLockErr(t, err, driver.Aborted)
					if !errors.Is(err, context.Canceled) {
						t.Errorf("error %v must wrap context.Canceled", err)
					}
					if elapsed > 60*time.Millisecond {
						t.Errorf("returned after %v, want ≤ 60ms", elapsed)
					}
					if n := len(f.acquires()); n != 1 {
						t.Errorf("Acquire calls = %d, want 1", n)
					}
				})
			})
		}
	})

	t.Run("deadline_during_backoff_is_network_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onAcquire(contendedStep())
			g := newFakeGuard(f)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			_, err := g.Acquire(ctx, "k", RetryDelay(time.Second))
			requireLockErr(t, err, driver.NetworkTimeout)
		})
	})

	t.Run("zero_delay_retry_honours_cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		busy := contendedStep()
		busy.before = func(context.Context) { cancel() }
		f := newFakeDriver().onAcquire(busy)
		g := newFakeGuard(f)
		_, err := g.Acquire(ctx, "k", RetryDelay(0), MaxRetries(100))
		requireLockErr(t, err, driver.Aborted)
		if n := len(f.acquires()); n != 1 {
			t.Errorf("Acquire calls = %d, want 1", n)
		}
	})
}

func TestGuardValidation(t *testing.T) {
	var nilCtx context.Context
	bg := context.Background()
	const ttlMsg = "syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got "
	tests := []struct {
		name    string
		ctx     context.Context
		key     string
		opts    []AcquireOption
		wantMsg string
	}{
		{"case110_ttl_negative", bg, "k", []AcquireOption{TTL(-time.Millisecond)}, ttlMsg + "-1ms"},
		{"case110_ttl_zero", bg, "k", []AcquireOption{TTL(0)}, ttlMsg + "0s"},
		{"case110_ttl_fractional_ms", bg, "k", []AcquireOption{TTL(1500 * time.Microsecond)}, ttlMsg + "1.5ms"},
		{"case110_ttl_over_100_years", bg, "k", []AcquireOption{TTL(101 * 365 * 24 * time.Hour)}, "syncguard.TTL: the lock TTL must be at most 100 years, got 884760h0m0s"},
		{"case110_empty_key", bg, "", nil, "key must not be empty"},
		{"case110_empty_key_wins_over_ttl", bg, "", []AcquireOption{TTL(0)}, "key must not be empty"},
		{"case110_invalid_utf8_key", bg, "\xff", nil, "key must be valid UTF-8"},
		{"case110_long_key", bg, strings.Repeat("k", driver.MaxKeyBytes+1), nil, "key exceeds maximum length of 512 bytes"},
		{"case110_max_retries_negative", bg, "k", []AcquireOption{MaxRetries(-1)}, "syncguard.MaxRetries: the number of retries must not be negative, got -1"},
		{"case110_retry_delay_negative", bg, "k", []AcquireOption{RetryDelay(-time.Millisecond)}, "syncguard.RetryDelay: the retry delay must not be negative, got -1ms"},
		{"case110_timeout_zero", bg, "k", []AcquireOption{Timeout(0)}, "syncguard.Timeout: the acquisition timeout must be positive, got 0s"},
		{"case110_timeout_negative", bg, "k", []AcquireOption{Timeout(-time.Second)}, "syncguard.Timeout: the acquisition timeout must be positive, got -1s"},
		{"case110_unknown_backoff", bg, "k", []AcquireOption{Backoff(BackoffStrategy(7))}, "syncguard.Backoff: unknown backoff strategy 7 (want BackoffExponential or BackoffFixed)"},
		{"case110_unknown_jitter", bg, "k", []AcquireOption{Jitter(JitterStrategy(-1))}, "syncguard.Jitter: unknown jitter strategy -1 (want JitterEqual, JitterFull or JitterNone)"},
		{"case110_nil_backoff_policy", bg, "k", []AcquireOption{BackoffPolicy(nil)}, "syncguard.BackoffPolicy: newPolicy must not be nil"},
		{"case110_first_invalid_option_wins", bg, "k", []AcquireOption{MaxRetries(-1), Timeout(0)}, "syncguard.MaxRetries: the number of retries must not be negative, got -1"},
		{"case110_nil_ctx", nilCtx, "k", nil, "nil context"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver()
			g := newFakeGuard(f)
			ran := false
			errs := map[string]error{
				"Do": g.Do(tc.ctx, tc.key, func(context.Context, *Lease[fakeCaps]) error { ran = true; return nil }, tc.opts...),
			}
			l, err := g.Acquire(tc.ctx, tc.key, tc.opts...)
			if l != nil {
				t.Error("Acquire returned a lease")
			}
			errs["Acquire"] = err
			l, err = g.TryAcquire(tc.ctx, tc.key, tc.opts...)
			if l != nil {
				t.Error("TryAcquire returned a lease")
			}
			errs["TryAcquire"] = err
			for op, err := range errs {
				le := requireLockErr(t, err, driver.InvalidArgument)
				if le.Message != tc.wantMsg {
					t.Errorf("%s: message = %q, want %q", op, le.Message, tc.wantMsg)
				}
				if !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("%s: %v does not match ErrInvalidArgument", op, err)
				}
			}
			if ran {
				t.Error("fn ran")
			}
			if n := len(f.acquires()); n != 0 {
				t.Errorf("Acquire calls = %d, want 0", n)
			}
		})
	}

	t.Run("case110_nil_fn", func(t *testing.T) {
		f := newFakeDriver()
		g := newFakeGuard(f)
		err := g.Do(context.Background(), "k", nil)
		requireLockErr(t, err, driver.InvalidArgument)
		if n := len(f.acquires()); n != 0 {
			t.Errorf("Acquire calls = %d, want 0", n)
		}
	})

	t.Run("nil_options_are_ignored", func(t *testing.T) {
		f := newFakeDriver()
		g := New(f, nil, withRandom(func() float64 { return 0 }), nil)
		l, err := g.Acquire(context.Background(), "k", nil, TTL(time.Second), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if got := f.acquires()[0].ttl; got != time.Second {
			t.Errorf("ttl = %v", got)
		}
	})
}

func TestGuardErrorMapping(t *testing.T) {
	t.Run("case111_non_lock_error_becomes_internal", func(t *testing.T) {
		cause := errors.New("socket exploded")
		for _, via := range acquireVias {
			f := newFakeDriver().onAcquire(fakeStep[driver.AcquireResult]{err: cause})
			g := newFakeGuard(f)
			err := via.run(context.Background(), g, "k111")
			le := requireLockErr(t, err, driver.Internal)
			if !errors.Is(err, cause) {
				t.Errorf("%s: cause not kept: %v", via.name, err)
			}
			if !strings.Contains(le.Message, "socket exploded") || le.Key != "k111" {
				t.Errorf("%s: error = %+v", via.name, le)
			}
			if n := len(f.acquires()); n != 1 {
				t.Errorf("%s: Acquire calls = %d, want 1 (errors are not retried)", via.name, n)
			}
		}
		f := newFakeDriver().onAcquire(fakeStep[driver.AcquireResult]{err: cause})
		_, err := newFakeGuard(f).TryAcquire(context.Background(), "k111")
		requireLockErr(t, err, driver.Internal)
	})

	t.Run("case111_lock_error_unchanged", func(t *testing.T) {
		orig := &LockError{Code: driver.ServiceUnavailable, Message: "backend down", Key: "k111"}
		wrapped := fmt.Errorf("wrapped: %w", orig)
		for _, in := range []error{orig, wrapped} {
			for _, via := range acquireVias {
				f := newFakeDriver().onAcquire(fakeStep[driver.AcquireResult]{err: in})
				err := via.run(context.Background(), newFakeGuard(f), "k111")
				if err != in {
					t.Errorf("%s: error = %v (%T), want the driver's error unchanged", via.name, err, err)
				}
			}
			f := newFakeDriver().onAcquire(fakeStep[driver.AcquireResult]{err: in})
			if _, err := newFakeGuard(f).TryAcquire(context.Background(), "k111"); err != in {
				t.Errorf("TryAcquire: error = %v, want unchanged", err)
			}
		}
	})

	t.Run("error_after_contention_stops_retrying", func(t *testing.T) {
		boom := driver.NewError(driver.RateLimited, "slow down")
		f := newFakeDriver().onAcquire(contendedStep(), fakeStep[driver.AcquireResult]{err: boom})
		err := newFakeGuard(f).Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { return nil }, RetryDelay(0))
		if err != boom {
			t.Fatalf("error = %v", err)
		}
		if n := len(f.acquires()); n != 2 {
			t.Errorf("Acquire calls = %d, want 2", n)
		}
	})
}

func TestGuardReleaseFailureIsolation(t *testing.T) {
	relErr := driver.NewError(driver.Internal, "release backend down")
	wantInfo := releaseErrInfo{LockID: fakeLockID(1), Key: "café"}
	fnErr := errors.New("fn failed")
	tests := []struct {
		name       string
		release    fakeStep[driver.ReleaseResult]
		fnErr      error
		cbPanics   bool
		wantCB     int
		checkCBErr func(t *testing.T, err error)
	}{
		{
			name: "case113_release_error_goes_to_callback", release: fakeStep[driver.ReleaseResult]{err: relErr}, wantCB: 1,
			checkCBErr: func(t *testing.T, err error) {
				if err != relErr {
					t.Errorf("callback error = %v, want the driver's error", err)
				}
			},
		},
		{
			name: "case113_non_error_panic_normalised", release: fakeStep[driver.ReleaseResult]{panicVal: "kaboom-value"}, wantCB: 1,
			checkCBErr: func(t *testing.T, err error) {
				requireLockErr(t, err, driver.Internal)
				if !strings.Contains(err.Error(), "kaboom-value") {
					t.Errorf("callback error %q does not carry the panic value", err)
				}
			},
		},
		{
			name: "case113_error_panic_wrapped", release: fakeStep[driver.ReleaseResult]{panicVal: io.ErrUnexpectedEOF}, wantCB: 1,
			checkCBErr: func(t *testing.T, err error) {
				requireLockErr(t, err, driver.Internal)
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("callback error %v does not wrap the panic value", err)
				}
			},
		},
		{name: "case113_panicking_callback_swallowed", release: fakeStep[driver.ReleaseResult]{err: relErr}, cbPanics: true, wantCB: 1},
		{
			name: "case113_fn_error_wins_callback_still_runs", release: fakeStep[driver.ReleaseResult]{err: relErr}, fnErr: fnErr, wantCB: 1,
			checkCBErr: func(t *testing.T, err error) {
				if err != relErr {
					t.Errorf("callback error = %v", err)
				}
			},
		},
		{name: "case113_no_callback_on_success", release: fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}}, wantCB: 0},
		{name: "case113_no_callback_on_success_fn_error", release: fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}}, fnErr: fnErr, wantCB: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &releaseErrRecorder{}
			logger, logBuf := bufLogger()
			f := newFakeDriver().onRelease(tc.release)
			g := newFakeGuard(f, WithLogger(logger), WithOnReleaseError(func(err error, key, lockID string) {
				rec.record(err, key, lockID)
				if tc.cbPanics {
					panic("callback panic")
				}
			}))
			err := g.Do(context.Background(), "cafe\u0301", func(context.Context, *Lease[fakeCaps]) error { return tc.fnErr })
			if err != tc.fnErr {
				t.Fatalf("Do = %v, want %v", err, tc.fnErr)
			}
			errs, infos, _ := rec.snapshot()
			if len(errs) != tc.wantCB {
				t.Fatalf("callback calls = %d, want %d", len(errs), tc.wantCB)
			}
			for _, info := range infos {
				if diff := cmp.Diff(wantInfo, info); diff != "" {
					t.Errorf("info (-want +got):\n%s", diff)
				}
			}
			if tc.checkCBErr != nil {
				tc.checkCBErr(t, errs[0])
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d, want 1", n)
			}
			if s := logBuf.String(); s != "" {
				t.Errorf("custom callback must replace the default logger; logged %q", s)
			}
		})
	}
}

func TestGuardDefaultReleaseErrorHandler(t *testing.T) {
	const key, secretMsg = "secret-key-114", "connection reset by peer"
	tests := []struct {
		name     string
		err      error
		wantType string
	}{
		{"case114_lock_error", &LockError{Code: driver.ServiceUnavailable, Message: secretMsg, Key: key, LockID: fakeLockID(1)}, "*driver.LockError"},
		{"case114_plain_error", errors.New(secretMsg), "*errors.errorString"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"do", "close"} {
				logger, buf := bufLogger()
				f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: tc.err})
				g := newFakeGuard(f, WithLogger(logger))
				if path == "do" {
					if err := g.Do(context.Background(), key, func(context.Context, *Lease[fakeCaps]) error { return nil }); err != nil {
						t.Fatal(err)
					}
				} else {
					l, err := g.Acquire(context.Background(), key)
					if err != nil {
						t.Fatal(err)
					}
					l.Close()
				}
				out := buf.String()
				for _, want := range []string{`msg="lock disposal failed"`, secretMsg, "errorType=" + tc.wantType, "source=disposal", "level=WARN"} {
					if !strings.Contains(out, want) {
						t.Errorf("%s: log %q lacks %q", path, out, want)
					}
				}
				for _, never := range []string{key, fakeLockID(1)} {
					if strings.Contains(out, never) {
						t.Errorf("%s: log %q leaks %q", path, out, never)
					}
				}
				if n := strings.Count(out, "lock disposal failed"); n != 1 {
					t.Errorf("%s: logged %d times", path, n)
				}
			}
		})
	}

	t.Run("case114_nothing_logged_on_success", func(t *testing.T) {
		logger, buf := bufLogger()
		g := newFakeGuard(newFakeDriver(), WithLogger(logger))
		if err := g.Do(context.Background(), key, func(context.Context, *Lease[fakeCaps]) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if s := buf.String(); s != "" {
			t.Errorf("logged %q", s)
		}
	})
}

// ---------------------------------------------------------------------------
// Further Do behaviour (docs/contract.md#what-the-application-layer-does: zero delay, cancellable sleep, detached release, lease passed to fn)
// ---------------------------------------------------------------------------

func TestGuardDoLease(t *testing.T) {
	t.Run("lease_passed_to_fn", func(t *testing.T) {
		f := newFakeDriver().onAcquire(contendedStep(), acquiredStep(7))
		g := newFakeGuard(f)
		var got struct {
			lockID string
			fence  Fence
			key    string
			exp    int64
		}
		err := g.Do(context.Background(), "k", func(ctx context.Context, l *Lease[fakeCaps]) error {
			got.lockID, got.fence, got.key, got.exp = l.LockID(), FenceOf(l), l.Key(), l.ExpiresAtMs()
			if ctx != l.Context() {
				t.Error("fn's ctx is not the lease's context")
			}
			return nil
		}, RetryDelay(0))
		if err != nil {
			t.Fatal(err)
		}
		if got.lockID != fakeLockID(7) || got.fence != 7 || got.key != "k" || got.exp != fakeExpiry(7) {
			t.Errorf("lease = %+v", got)
		}
	})

	t.Run("release_not_ok_is_lock_lost", func(t *testing.T) {
		f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{Detail: driver.DetailExpired}})
		rec := &releaseErrRecorder{}
		g := newFakeGuard(f, WithOnReleaseError(rec.record))
		err := g.Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { return nil })
		if !errors.Is(err, ErrLockLost) {
			t.Fatalf("Do = %v, want ErrLockLost", err)
		}
		if errs, _, _ := rec.snapshot(); len(errs) != 0 {
			t.Errorf("callback called for OK=false: %v", errs)
		}
		// fn's own error still wins.
		fnErr := errors.New("fn")
		if err := g.Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { return fnErr }); err != fnErr {
			t.Errorf("Do = %v, want fn's error", err)
		}
	})

	t.Run("fn_releasing_itself_is_not_a_loss", func(t *testing.T) {
		for _, how := range []string{"release", "close"} {
			f := newFakeDriver()
			g := newFakeGuard(f)
			err := g.Do(context.Background(), "k", func(ctx context.Context, l *Lease[fakeCaps]) error {
				if how == "close" {
					l.Close()
					return nil
				}
				ok, err := l.Release(ctx)
				if !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: Do = %v, want nil", how, err)
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("%s: Release calls = %d, want 1", how, n)
			}
		}
	})

	t.Run("fn_panic_releases_and_repanics", func(t *testing.T) {
		f := newFakeDriver()
		g := newFakeGuard(f)
		type boom struct{ v int }
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			_ = g.Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { panic(boom{42}) })
		}()
		if recovered != (boom{42}) {
			t.Fatalf("recovered %v, want the original panic value", recovered)
		}
		rel := f.releases()
		if len(rel) != 1 || rel[0].arg != fakeLockID(1) {
			t.Fatalf("Release calls = %+v", rel)
		}
	})

	t.Run("fn_panic_release_failure_reaches_callback", func(t *testing.T) {
		relErr := driver.NewError(driver.Internal, "down")
		f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: relErr})
		rec := &releaseErrRecorder{}
		g := newFakeGuard(f, WithOnReleaseError(rec.record))
		func() {
			defer func() { _ = recover() }()
			_ = g.Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { panic("fn") })
		}()
		if errs, _, _ := rec.snapshot(); len(errs) != 1 || errs[0] != relErr {
			t.Fatalf("callback errors = %v", errs)
		}
	})

	t.Run("case123_release_detached_from_cancelled_ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			type ctxKey struct{}
			f := newFakeDriver()
			tests := []struct {
				name    string
				opts    []Option
				timeout time.Duration
			}{
				{"default_release_timeout", nil, defaultReleaseTimeout},
				{"custom_release_timeout", []Option{WithReleaseTimeout(2 * time.Second)}, 2 * time.Second},
			}
			for i, tc := range tests {
				g := newFakeGuard(f, tc.opts...)
				ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
				err := g.Do(ctx, "k", func(fctx context.Context, l *Lease[fakeCaps]) error {
					cancel()
					if fctx.Err() == nil {
						t.Error("lease context not cancelled with the caller's")
					}
					return nil
				})
				if err != nil {
					t.Errorf("%s: Do = %v", tc.name, err)
				}
				rel := f.releases()
				if len(rel) != i+1 {
					t.Fatalf("%s: Release calls = %d", tc.name, len(rel))
				}
				c := rel[i]
				if c.ctxErr != nil {
					t.Errorf("%s: release ctx already done: %v", tc.name, c.ctxErr)
				}
				if !c.hasDeadline || c.deadline.Sub(c.at) != tc.timeout {
					t.Errorf("%s: release deadline in %v (set %v), want %v", tc.name, c.deadline.Sub(c.at), c.hasDeadline, tc.timeout)
				}
				if c.ctx.Value(ctxKey{}) != "v" {
					t.Errorf("%s: release ctx lost the caller's values", tc.name)
				}
				if c.ctx.Err() == nil {
					t.Errorf("%s: release ctx not cancelled after Do returned", tc.name)
				}
			}
		})
	})

	t.Run("auto_extend_default_on_for_do", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver()
			g := newFakeGuard(f)
			err := g.Do(context.Background(), "k", func(ctx context.Context, l *Lease[fakeCaps]) error {
				time.Sleep(3500 * time.Millisecond)
				return nil
			}, TTL(3*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(f.extends()); n != 3 {
				t.Errorf("Extend calls = %d, want 3", n)
			}
			// AutoExtend(false) switches it off.
			f2 := newFakeDriver()
			g2 := newFakeGuard(f2)
			_ = g2.Do(context.Background(), "k", func(ctx context.Context, l *Lease[fakeCaps]) error {
				time.Sleep(3500 * time.Millisecond)
				return nil
			}, TTL(3*time.Second), AutoExtend(false))
			if n := len(f2.extends()); n != 0 {
				t.Errorf("Extend calls with AutoExtend(false) = %d, want 0", n)
			}
		})
	})

	t.Run("case124_lost_during_fn_cancels_ctx_and_is_reported", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailNotFound}})
			g := newFakeGuard(f)
			start := time.Now()
			err := g.Do(context.Background(), "k", func(ctx context.Context, l *Lease[fakeCaps]) error {
				<-ctx.Done()
				if cause := context.Cause(ctx); !errors.Is(cause, ErrLockLost) {
					t.Errorf("cause = %v", cause)
				}
				return nil
			}, TTL(3*time.Second))
			if !errors.Is(err, ErrLockLost) {
				t.Fatalf("Do = %v, want ErrLockLost", err)
			}
			if !strings.Contains(err.Error(), driver.DetailNotFound) {
				t.Errorf("error %q lacks the detail", err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("lost after %v, want TTL/3", d)
			}
		})
	})
}

// ---------------------------------------------------------------------------
// TryAcquire, Acquire, watcher, BackoffPolicy, defaults
// ---------------------------------------------------------------------------

func TestGuardTryAcquire(t *testing.T) {
	t.Run("contention_returns_ErrLocked", func(t *testing.T) {
		f := newFakeDriver().onAcquire(contendedStep())
		g := newFakeGuard(f)
		l, err := g.TryAcquire(context.Background(), "k", MaxRetries(5), RetryDelay(0))
		if l != nil {
			t.Fatal("lease returned on contention")
		}
		if err != ErrLocked {
			t.Fatalf("error = %v, want ErrLocked", err)
		}
		if errors.Is(err, ErrAcquisitionTimeout) {
			t.Error("single attempt must not report AcquisitionTimeout")
		}
		if n := len(f.acquires()); n != 1 {
			t.Fatalf("Acquire calls = %d, want 1", n)
		}
	})

	t.Run("success", func(t *testing.T) {
		f := newFakeDriver()
		g := newFakeGuard(f)
		l, err := g.TryAcquire(context.Background(), "k", TTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.LockID() != fakeLockID(1) || FenceOf(l) != 1 || f.acquires()[0].ttl != 5*time.Second {
			t.Errorf("lease %q fence %v", l.LockID(), FenceOf(l))
		}
		if l.hbStop != nil {
			t.Error("TryAcquire must not auto-extend by default")
		}
	})
}

func TestGuardReleaseWatcher(t *testing.T) {
	t.Run("wakes_early_and_stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan struct{}, 1)
			var watchCtx context.Context
			w := &fakeWatchDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), acquiredStep(1)),
				watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
					watchCtx = ctx
					return ch, nil, nil
				},
			}
			g := newFakeGuard(w)
			ctx := context.Background()
			time.AfterFunc(30*time.Millisecond, func() { ch <- struct{}{} })
			start := time.Now()
			l, err := g.Acquire(ctx, "cafe\u0301", RetryDelay(time.Second), Backoff(BackoffFixed), Jitter(JitterNone))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if d := time.Since(start); d != 30*time.Millisecond {
				t.Errorf("acquired after %v, want 30ms (woken by the watcher)", d)
			}
			if diff := cmp.Diff([]time.Duration{30 * time.Millisecond}, w.acquireGaps()); diff != "" {
				t.Errorf("gaps (-want +got):\n%s", diff)
			}
			watches, stops := w.counts()
			if watches != 1 || stops != 1 {
				t.Errorf("watches = %d, stops = %d, want 1, 1", watches, stops)
			}
			// The watch runs under ctx, bounded by the default 5s Timeout.
			if dl, ok := watchCtx.Deadline(); w.watchCalls[0] != "café" || !ok || !dl.Equal(start.Add(5*time.Second)) {
				t.Errorf("WatchRelease(%v, %q); want ctx with the Timeout's deadline %v", watchCtx, w.watchCalls[0], start.Add(5*time.Second))
			}
		})
	})

	t.Run("closed_channel_falls_back_to_backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &fakeWatchDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), contendedStep(), acquiredStep(1)),
				watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
					ch := make(chan struct{})
					close(ch)
					return ch, nil, nil
				},
			}
			g := newFakeGuard(w)
			l, err := g.Acquire(context.Background(), "k", RetryDelay(100*time.Millisecond), Backoff(BackoffFixed), Jitter(JitterNone))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			// The close is one last wake-up (retry at once); after it the
			// Guard neither resubscribes nor spins but sleeps its backoff.
			want := []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond}
			if diff := cmp.Diff(want, w.acquireGaps()); diff != "" {
				t.Errorf("gaps (-want +got) — a closed watcher channel must not cause a busy loop:\n%s", diff)
			}
			if watches, stops := w.counts(); watches != 1 || stops != 1 {
				t.Errorf("watches = %d, stops = %d, want 1, 1 (every subscription stopped once)", watches, stops)
			}
		})
	})

	t.Run("watch_error_falls_back_to_backoff", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &fakeWatchDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), acquiredStep(1)),
				watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
					return nil, nil, driver.NewError(driver.ServiceUnavailable, "no pubsub")
				},
			}
			g := newFakeGuard(w)
			l, err := g.Acquire(context.Background(), "k", RetryDelay(10*time.Millisecond), Backoff(BackoffFixed), Jitter(JitterNone))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if diff := cmp.Diff([]time.Duration{10 * time.Millisecond, 10 * time.Millisecond}, w.acquireGaps()); diff != "" {
				t.Errorf("gaps (-want +got):\n%s", diff)
			}
			if _, stops := w.counts(); stops != 0 {
				t.Errorf("stops = %d", stops)
			}
		})
	})

	t.Run("stop_called_on_failure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := &fakeWatchDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep()),
				watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
					return make(chan struct{}), nil, nil
				},
			}
			g := newFakeGuard(w)
			_, err := g.Acquire(context.Background(), "k", MaxRetries(3), RetryDelay(10*time.Millisecond))
			requireLockErr(t, err, driver.AcquisitionTimeout)
			if watches, stops := w.counts(); watches != 1 || stops != 1 {
				t.Errorf("watches = %d, stops = %d, want 1, 1", watches, stops)
			}
		})
	})

	t.Run("no_watch_for_zero_delay", func(t *testing.T) {
		w := &fakeWatchDriver{
			fakeDriver: newFakeDriver().onAcquire(contendedStep(), acquiredStep(1)),
			watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
				return make(chan struct{}), nil, nil
			},
		}
		l, err := newFakeGuard(w).Acquire(context.Background(), "k", RetryDelay(0))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if watches, _ := w.counts(); watches != 0 {
			t.Errorf("watches = %d, want 0", watches)
		}
	})

	t.Run("with_observer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan struct{}, 1)
			ch <- struct{}{}
			w := &fakeWatchDriver{
				fakeDriver: newFakeDriver().onAcquire(contendedStep(), acquiredStep(1)),
				watch: func(ctx context.Context, key string) (<-chan struct{}, func(), error) {
					return ch, nil, nil
				},
			}
			g := newFakeGuard(w, WithObserver(&eventRecorder{}))
			start := time.Now()
			l, err := g.Acquire(context.Background(), "k", RetryDelay(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			if d := time.Since(start); d != 0 {
				t.Errorf("acquired after %v, want at once", d)
			}
		})
	})
}

func TestGuardBackoffPolicy(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		steps      []fakeStep[driver.AcquireResult]
		opts       []AcquireOption
		wantCalls  int
		wantSleeps []time.Duration
		wantCode   driver.Code
		wantMsg    string
	}{
		{
			name:  "constant_backoff",
			steps: []fakeStep[driver.AcquireResult]{contendedStep(), contendedStep(), acquiredStep(1)},
			opts: []AcquireOption{BackoffPolicy(func() backoff.BackOff {
				return backoff.NewConstantBackOff(20 * ms)
			})},
			wantCalls: 3, wantSleeps: []time.Duration{20 * ms, 20 * ms},
		},
		{
			name:  "stop_ends_acquisition",
			steps: []fakeStep[driver.AcquireResult]{contendedStep()},
			opts: []AcquireOption{BackoffPolicy(func() backoff.BackOff {
				return &backoff.StopBackOff{}
			})},
			wantCalls: 1, wantCode: driver.AcquisitionTimeout, wantMsg: "backoff policy stopped after 1 attempt",
		},
		{
			name:  "with_max_retries_policy",
			steps: []fakeStep[driver.AcquireResult]{contendedStep()},
			opts: []AcquireOption{BackoffPolicy(func() backoff.BackOff {
				return backoff.WithMaxRetries(backoff.NewConstantBackOff(5*ms), 2)
			})},
			wantCalls: 3, wantSleeps: []time.Duration{5 * ms, 5 * ms}, wantCode: driver.AcquisitionTimeout, wantMsg: "backoff policy stopped",
		},
		{
			name:  "max_retries_still_applies",
			steps: []fakeStep[driver.AcquireResult]{contendedStep()},
			opts: []AcquireOption{MaxRetries(1), BackoffPolicy(func() backoff.BackOff {
				return &backoff.ZeroBackOff{}
			})},
			wantCalls: 2, wantSleeps: []time.Duration{0}, wantCode: driver.AcquisitionTimeout, wantMsg: "failed to acquire lock after 2 attempts",
		},
		{
			name:  "timeout_still_applies",
			steps: []fakeStep[driver.AcquireResult]{contendedStep()},
			opts: []AcquireOption{Timeout(50 * ms), BackoffPolicy(func() backoff.BackOff {
				return backoff.NewConstantBackOff(40 * ms)
			})},
			wantCalls: 2, wantSleeps: []time.Duration{40 * ms}, wantCode: driver.AcquisitionTimeout, wantMsg: "timeout reached",
		},
		{
			name:  "nil_policy_falls_back_to_builtin",
			steps: []fakeStep[driver.AcquireResult]{contendedStep(), acquiredStep(1)},
			opts: []AcquireOption{RetryDelay(10 * ms), Jitter(JitterNone), BackoffPolicy(func() backoff.BackOff {
				return nil
			})},
			wantCalls: 2, wantSleeps: []time.Duration{10 * ms},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeDriver().onAcquire(tc.steps...)
				err := newFakeGuard(f).Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { return nil }, tc.opts...)
				if tc.wantCode == 0 {
					if err != nil {
						t.Fatal(err)
					}
				} else {
					le := requireLockErr(t, err, tc.wantCode)
					if !strings.HasPrefix(le.Message, tc.wantMsg) {
						t.Errorf("message = %q, want prefix %q", le.Message, tc.wantMsg)
					}
					if !errors.Is(err, ErrLocked) {
						t.Error("must match ErrLocked")
					}
				}
				if n := len(f.acquires()); n != tc.wantCalls {
					t.Errorf("Acquire calls = %d, want %d", n, tc.wantCalls)
				}
				if diff := cmp.Diff(tc.wantSleeps, f.acquireGaps(), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("sleeps (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestGuardAcquireDefaults(t *testing.T) {
	f := newFakeDriver()
	g := newFakeGuard(f, WithAcquireOptions(TTL(10*time.Second), nil), WithAcquireOptions(AutoExtend(true)))
	l, err := g.Acquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if l.hbStop == nil {
		t.Error("default AutoExtend(true) not applied")
	}
	l.Close()
	l, err = g.Acquire(context.Background(), "k", TTL(20*time.Second), AutoExtend(false))
	if err != nil {
		t.Fatal(err)
	}
	if l.hbStop != nil {
		t.Error("per-call AutoExtend(false) not applied")
	}
	l.Close()
	got := []time.Duration{f.acquires()[0].ttl, f.acquires()[1].ttl}
	if diff := cmp.Diff([]time.Duration{10 * time.Second, 20 * time.Second}, got); diff != "" {
		t.Errorf("ttls (-want +got):\n%s", diff)
	}
	// An invalid default fails every call before I/O.
	bad := newFakeGuard(f, WithAcquireOptions(MaxRetries(-1)))
	_, err = bad.Acquire(context.Background(), "k")
	requireLockErr(t, err, driver.InvalidArgument)
}

func TestGuardAccessors(t *testing.T) {
	raw := &driver.LockInfo{Key: "k", LockID: fakeLockID(1), Fence: 3, ExpiresAtMs: 2000, AcquiredAtMs: 1000}
	info := &LockInfo{KeyHash: driver.HashKey("k"), LockIDHash: driver.HashKey(fakeLockID(1)), Fence: 3, ExpiresAtMs: 2000, AcquiredAtMs: 1000}
	f := newFakeDriver()
	f.locked, f.info = true, raw
	g := newFakeGuard(f)
	want := driver.Info{Name: "fake", Fencing: true, ServerTime: true}
	if diff := cmp.Diff(want, g.Capabilities()); diff != "" {
		t.Errorf("Capabilities (-want +got):\n%s", diff)
	}
	ctx := context.Background()
	if locked, err := g.IsLocked(ctx, "k"); !locked || err != nil {
		t.Errorf("IsLocked = %v, %v", locked, err)
	}
	// Lookups hand out the hashed view of the driver's raw LockInfo.
	if got, err := g.Lookup(ctx, "k"); err != nil || !cmp.Equal(got, info) {
		t.Errorf("Lookup = %+v, %v; want %+v", got, err, info)
	}
	if got, err := g.LookupID(ctx, fakeLockID(1)); err != nil || !cmp.Equal(got, info) {
		t.Errorf("LookupID = %+v, %v; want %+v", got, err, info)
	}
	if owns, err := g.Owns(ctx, fakeLockID(1)); !owns || err != nil {
		t.Errorf("Owns = %v, %v", owns, err)
	}
	f.info = nil
	if owns, err := g.Owns(ctx, fakeLockID(1)); owns || err != nil {
		t.Errorf("Owns = %v, %v", owns, err)
	}
	if got, err := g.Lookup(ctx, "k"); got != nil || err != nil {
		t.Errorf("Lookup of no lock = %v, %v; want nil, nil", got, err)
	}

	// Invalid input is refused by the Guard before the driver sees it.
	var nilCtx context.Context
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	invalid := []struct {
		name string
		err  error
		code driver.Code
	}{}
	add := func(name string, code driver.Code, errs ...error) {
		for i, err := range errs {
			invalid = append(invalid, struct {
				name string
				err  error
				code driver.Code
			}{fmt.Sprintf("%s#%d", name, i), err, code})
		}
	}
	_, e1 := g.IsLocked(nilCtx, "k")
	_, e2 := g.Lookup(nilCtx, "k")
	_, e3 := g.LookupID(nilCtx, fakeLockID(1))
	_, e4 := g.Owns(nilCtx, fakeLockID(1))
	add("nil ctx", driver.InvalidArgument, e1, e2, e3, e4)
	_, e1 = g.IsLocked(ctx, "")
	_, e2 = g.Lookup(ctx, strings.Repeat("k", driver.MaxKeyBytes+1))
	add("bad key", driver.InvalidArgument, e1, e2)
	_, e1 = g.LookupID(ctx, "short")
	_, e2 = g.Owns(ctx, "")
	add("bad lock ID", driver.InvalidArgument, e1, e2)
	_, e1 = g.IsLocked(cancelled, "k")
	_, e2 = g.LookupID(cancelled, fakeLockID(1))
	add("cancelled ctx", driver.Aborted, e1, e2)
	for _, tc := range invalid {
		if got := driver.CodeOf(tc.err); got != tc.code {
			t.Errorf("%s: %v (code %v), want code %v", tc.name, tc.err, got, tc.code)
		}
	}
	wantCalls := map[string]int{"IsLocked": 1, "LookupByKey": 2, "LookupByID": 3}
	if diff := cmp.Diff(wantCalls, f.otherCalls); diff != "" {
		t.Errorf("driver calls (-want +got):\n%s", diff)
	}

	// With an observer the Guard observes its calls; results and
	// capabilities are unchanged.
	obs := &eventRecorder{}
	f.info = raw
	gd := newFakeGuard(f, WithObserver(obs))
	if diff := cmp.Diff(want, gd.Capabilities()); diff != "" {
		t.Errorf("observed Capabilities (-want +got):\n%s", diff)
	}
	if got, err := gd.Lookup(ctx, "k"); err != nil || !cmp.Equal(got, info) {
		t.Errorf("observed Lookup = %+v, %v; want %+v", got, err, info)
	}
	if n := len(obs.snapshot()); n != 1 {
		t.Errorf("observed Lookup emitted %d events, want 1", n)
	}
}
