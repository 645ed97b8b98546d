package syncguard

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/syncguard/syncguard/driver"
)

// These tests check the events a Guard with WithObserver emits for its own
// driver calls (observe.go): one per Acquire, Release, Extend, IsLocked
// and lookup, with hashes, results, reasons, codes, raw fields and
// latency, and isolation from observer panics.

// telemetryFakeCaps is the capability type of telemetryFakeDriver.
type telemetryFakeCaps struct {
	driver.WithFencing
}

func (telemetryFakeCaps) Name() string { return "telemetry-fake" }

// telemetryFakeDriver is a scripted Driver: every method returns the
// configured result and counts its calls. delay, if set, is slept in every
// call (for latency checks under synctest).
type telemetryFakeDriver struct {
	acquire    driver.AcquireResult
	release    driver.ReleaseResult
	extend     driver.ExtendResult
	locked     bool
	info       *driver.LockInfo
	acquireErr error // returned by Acquire
	err        error // returned by every other lock method
	recErr     error // returned by every record/rate method
	delay      time.Duration
	mu         sync.Mutex
	calls      map[string]int
	lastCtx    context.Context
	lastKey    string
	lastArg    string
	lastTTL    time.Duration
	putArgs    []any
	watch      chan struct{} // WatchRelease's channel (telemetryWatchDriver)
}

func (f *telemetryFakeDriver) record(method string, ctx context.Context, key, arg string, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	f.lastCtx, f.lastKey, f.lastArg, f.lastTTL = ctx, key, arg, ttl
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
}

func (f *telemetryFakeDriver) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *telemetryFakeDriver) Capabilities() telemetryFakeCaps { return telemetryFakeCaps{} }

func (f *telemetryFakeDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	f.record("Acquire", ctx, key, key, ttl)
	return f.acquire, f.acquireErr
}

func (f *telemetryFakeDriver) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	f.record("Release", ctx, key, lockID, 0)
	return f.release, f.err
}

func (f *telemetryFakeDriver) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	f.record("Extend", ctx, key, lockID, ttl)
	return f.extend, f.err
}

func (f *telemetryFakeDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	f.record("IsLocked", ctx, key, key, 0)
	return f.locked, f.err
}

func (f *telemetryFakeDriver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	f.record("LookupByKey", ctx, key, key, 0)
	return f.info, f.err
}

func (f *telemetryFakeDriver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	f.record("LookupByID", ctx, "", lockID, 0)
	return f.info, f.err
}

func (f *telemetryFakeDriver) PutRecord(ctx context.Context, name string, fence Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	f.record("PutRecord", ctx, name, name, ttl)
	f.mu.Lock()
	f.putArgs = []any{fence, string(value)}
	f.mu.Unlock()
	return driver.PutResult{Stored: true, Fence: fence}, f.recErr
}

func (f *telemetryFakeDriver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	f.record("GetRecord", ctx, name, name, 0)
	return &driver.Record{Value: []byte("v"), Fence: 7}, f.recErr
}

func (f *telemetryFakeDriver) DeleteRecord(ctx context.Context, name string, fence Fence) (bool, error) {
	f.record("DeleteRecord", ctx, name, name, 0)
	return true, f.recErr
}

func (f *telemetryFakeDriver) AllowN(ctx context.Context, key string, limit RateLimit, n int) (RateResult, error) {
	f.record("AllowN", ctx, key, key, 0)
	return RateResult{Allowed: n, Remaining: 3}, f.recErr
}

func (f *telemetryFakeDriver) ResetRate(ctx context.Context, key string) error {
	f.record("ResetRate", ctx, key, key, 0)
	return f.recErr
}

// telemetryWatchDriver adds a ReleaseWatcher to telemetryFakeDriver.
type telemetryWatchDriver struct {
	telemetryFakeDriver
}

func (f *telemetryWatchDriver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	f.record("WatchRelease", ctx, key, key, 0)
	return f.watch, func() {}, nil
}

// telemetryRecorder collects events in order.
type telemetryRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *telemetryRecorder) OnEvent(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *telemetryRecorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// telemetryOpRecorder is an OperationObserver collecting the events it
// receives with their context.
type telemetryOpRecorder struct {
	telemetryRecorder
}

func (r *telemetryOpRecorder) OnEvent(Event) { panic("OnEvent called on an OperationObserver") }

func (r *telemetryOpRecorder) StartOperation(ctx context.Context, _ EventType) context.Context {
	return ctx
}

func (r *telemetryOpRecorder) OnEventContext(_ context.Context, e Event) {
	r.telemetryRecorder.OnEvent(e)
}

const (
	telemetryTestKey = "resource:123"
	telemetryTestID  = "AAAAAAAAAAAAAAAAAAAAAA"
	telemetryOtherID = "abcdefghijklmnopqrstuv"
)

var (
	ignoreLatency = cmpopts.IgnoreFields(Event{}, "Latency")
	// telemetryHeld is the fake's result of a successful acquisition.
	telemetryHeld = driver.AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 1, ExpiresAtMs: 1000}
	rawAll        = WithRawEvents(func(Event) bool { return true })
	quietLogger   = WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
)

// newTelemetryGuard returns a Guard over f observed by o, with lost-lease
// logs discarded.
func newTelemetryGuard(f driver.Driver[telemetryFakeCaps], o Observer, opts ...Option) *Guard[telemetryFakeCaps] {
	return New(f, append([]Option{WithObserver(o), quietLogger}, opts...)...)
}

// telemetryOp runs one Guard call. Calls that need a lease acquire it
// first (through rec's reset) so that only the call's own events remain.
type telemetryOp func(ctx context.Context, g *Guard[telemetryFakeCaps], rec *telemetryRecorder) error

func opAcquire(key string) telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], _ *telemetryRecorder) error {
		_, err := g.TryAcquire(ctx, key, TTL(time.Second))
		if errors.Is(err, ErrLocked) {
			return nil // contention is a result
		}
		return err
	}
}

// heldLease acquires telemetryTestKey and forgets the acquisition's
// events.
func heldLease(ctx context.Context, g *Guard[telemetryFakeCaps], rec *telemetryRecorder) (*Lease[telemetryFakeCaps], error) {
	l, err := g.TryAcquire(ctx, telemetryTestKey)
	rec.take()
	return l, err
}

func opRelease() telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], rec *telemetryRecorder) error {
		l, err := heldLease(ctx, g, rec)
		if err != nil {
			return err
		}
		_, err = l.Release(ctx)
		return err
	}
}

func opExtend() telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], rec *telemetryRecorder) error {
		l, err := heldLease(ctx, g, rec)
		if err != nil {
			return err
		}
		_, err = l.Extend(ctx, time.Second)
		return err
	}
}

func opIsLocked(key string) telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], _ *telemetryRecorder) error {
		_, err := g.IsLocked(ctx, key)
		return err
	}
}

func opLookup(key string) telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], _ *telemetryRecorder) error {
		_, err := g.Lookup(ctx, key)
		return err
	}
}

func opLookupID(id string) telemetryOp {
	return func(ctx context.Context, g *Guard[telemetryFakeCaps], _ *telemetryRecorder) error {
		_, err := g.LookupID(ctx, id)
		return err
	}
}

// telemetryCase is one scripted call and the events it must produce.
type telemetryCase struct {
	name     string
	fake     telemetryFakeDriver
	opts     []Option
	op       telemetryOp
	wantCode driver.Code // the call's error code; 0 for none
	want     []Event
}

func runTelemetryCases(t *testing.T, cases []telemetryCase) {
	t.Helper()
	for i := range cases {
		tc := &cases[i]
		t.Run(tc.name, func(t *testing.T) {
			fake := &tc.fake
			rec := &telemetryRecorder{}
			g := newTelemetryGuard(fake, rec, tc.opts...)
			err := tc.op(context.Background(), g, rec)
			if got := driver.CodeOf(err); got != tc.wantCode || (err == nil) != (tc.wantCode == 0) {
				t.Fatalf("error = %v (code %v), want code %v", err, got, tc.wantCode)
			}
			if diff := cmp.Diff(tc.want, rec.take(), ignoreLatency, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTelemetryAcquireEvents(t *testing.T) {
	hk := driver.HashKey(telemetryTestKey)
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case145/success",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case145/contention",
			fake: telemetryFakeDriver{acquire: driver.AcquireResult{Reason: driver.ReasonLocked}},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: driver.ReasonLocked}},
		},
		{
			name: "case145/contention-without-driver-reason",
			fake: telemetryFakeDriver{acquire: driver.AcquireResult{}},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: driver.ReasonLocked}},
		},
		{
			name: "case145/key-hash-of-normalised-key",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			op:   opAcquire("cafe\u0301"),
			want: []Event{{Type: EventAcquire, KeyHash: "850f7dc43910ff890f8879c0", Result: ResultOK}},
		},
		{
			name:     "case145/error-has-code",
			fake:     telemetryFakeDriver{acquireErr: driver.NewError(driver.ServiceUnavailable, "down")},
			op:       opAcquire(telemetryTestKey),
			wantCode: driver.ServiceUnavailable,
			want:     []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: driver.ServiceUnavailable}},
		},
		{
			name:     "case145/non-lock-error-is-internal",
			fake:     telemetryFakeDriver{acquireErr: errors.New("boom")},
			op:       opAcquire(telemetryTestKey),
			wantCode: driver.Internal,
			want:     []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: driver.Internal}},
		},
		{
			// The Guard refuses an invalid key before any driver call:
			// nothing is hashed or reported.
			name:     "case145/invalid-key-not-reported",
			fake:     telemetryFakeDriver{acquire: telemetryHeld},
			opts:     []Option{rawAll},
			op:       opAcquire(strings.Repeat("x", 10<<20)),
			wantCode: driver.InvalidArgument,
		},
		{
			name:     "case145/error-with-raw-keeps-key",
			fake:     telemetryFakeDriver{acquireErr: driver.NewError(driver.NetworkTimeout, "slow")},
			opts:     []Option{rawAll},
			op:       opAcquire(telemetryTestKey),
			wantCode: driver.NetworkTimeout,
			want:     []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: driver.NetworkTimeout, Key: telemetryTestKey}},
		},
	})
}

func TestTelemetryRawFields(t *testing.T) {
	hk := driver.HashKey(telemetryTestKey)
	okEvent := Event{Type: EventAcquire, KeyHash: hk, Result: ResultOK}
	rawEvent := okEvent
	rawEvent.Key, rawEvent.LockID = telemetryTestKey, telemetryTestID

	runTelemetryCases(t, []telemetryCase{
		{
			name: "case146/raw-always",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			opts: []Option{rawAll},
			op:   opAcquire(telemetryTestKey),
			want: []Event{rawEvent},
		},
		{
			name: "case146/raw-never",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			opts: []Option{WithRawEvents(func(Event) bool { return false })},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/default-is-redacted",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/contention-has-key-but-no-lockid",
			fake: telemetryFakeDriver{acquire: driver.AcquireResult{Reason: driver.ReasonLocked, LockID: telemetryOtherID}},
			opts: []Option{rawAll},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: driver.ReasonLocked, Key: telemetryTestKey}},
		},
		{
			name: "case146/raw-key-is-normalised",
			fake: telemetryFakeDriver{acquire: driver.AcquireResult{Reason: driver.ReasonLocked}},
			opts: []Option{rawAll},
			op:   opAcquire("cafe\u0301"),
			want: []Event{{Type: EventAcquire, KeyHash: driver.HashKey("café"), Result: ResultFail, Reason: driver.ReasonLocked, Key: "caf\u00e9"}},
		},
		{
			name: "case146/nil-predicate-is-off",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			opts: []Option{WithRawEvents(nil)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/last-option-wins",
			fake: telemetryFakeDriver{acquire: telemetryHeld},
			opts: []Option{rawAll, WithRawEvents(func(Event) bool { return false })},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
	})

	t.Run("case146/predicate-selecting-acquire", func(t *testing.T) {
		fake := &telemetryFakeDriver{acquire: telemetryHeld, release: driver.ReleaseResult{OK: true}}
		rec := &telemetryRecorder{}
		var seen []Event
		pred := func(e Event) bool {
			seen = append(seen, e)
			return e.Type == EventAcquire
		}
		g := newTelemetryGuard(fake, rec, WithRawEvents(pred))
		l, err := g.TryAcquire(context.Background(), telemetryTestKey)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(seen); got != 1 {
			t.Fatalf("predicate called %d times for one acquire, want 1", got)
		}
		if diff := cmp.Diff(okEvent, seen[0], ignoreLatency); diff != "" {
			t.Errorf("predicate saw (-want +got):\n%s", diff)
		}
		if _, err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := []Event{
			rawEvent,
			{Type: EventRelease, KeyHash: hk, LockIDHash: driver.HashKey(telemetryTestID), Result: ResultOK},
		}
		if diff := cmp.Diff(want, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("case146/panicking-predicate-redacts", func(t *testing.T) {
		fake := &telemetryFakeDriver{acquire: telemetryHeld}
		rec := &telemetryRecorder{}
		g := newTelemetryGuard(fake, rec, WithRawEvents(func(Event) bool { panic("predicate") }))
		l, err := g.TryAcquire(context.Background(), telemetryTestKey)
		if err != nil || l.LockID() != telemetryTestID || FenceOf(l) != telemetryHeld.Fence || l.ExpiresAtMs() != telemetryHeld.ExpiresAtMs {
			t.Fatalf("TryAcquire = %+v, %v; want the lease of %+v", l, err, telemetryHeld)
		}
		if diff := cmp.Diff([]Event{okEvent}, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestTelemetryReleaseExtendEvents(t *testing.T) {
	hk, hid := driver.HashKey(telemetryTestKey), driver.HashKey(telemetryTestID)
	raw := []Option{rawAll}
	lost := func(detail string) Event {
		return Event{Type: EventLost, KeyHash: hk, LockIDHash: hid, Result: ResultFail, Reason: "extend found the lock gone (" + detail + ")"}
	}
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case147/release-ok",
			fake: telemetryFakeDriver{acquire: telemetryHeld, release: driver.ReleaseResult{OK: true}},
			op:   opRelease(),
			want: []Event{{Type: EventRelease, KeyHash: hk, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case147/release-expired",
			fake: telemetryFakeDriver{acquire: telemetryHeld, release: driver.ReleaseResult{Detail: driver.DetailExpired}},
			op:   opRelease(),
			want: []Event{{Type: EventRelease, KeyHash: hk, LockIDHash: hid, Result: ResultFail, Reason: driver.DetailExpired}},
		},
		{
			name: "case147/release-raw",
			fake: telemetryFakeDriver{acquire: telemetryHeld, release: driver.ReleaseResult{OK: true}},
			opts: raw,
			op:   opRelease(),
			want: []Event{{Type: EventRelease, KeyHash: hk, LockIDHash: hid, Result: ResultOK, Key: telemetryTestKey, LockID: telemetryTestID}},
		},
		{
			name: "case147/extend-ok",
			fake: telemetryFakeDriver{acquire: telemetryHeld, extend: driver.ExtendResult{OK: true, ExpiresAtMs: 5}},
			op:   opExtend(),
			want: []Event{{Type: EventExtend, KeyHash: hk, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case147/extend-not-found",
			fake: telemetryFakeDriver{acquire: telemetryHeld, extend: driver.ExtendResult{Detail: driver.DetailNotFound}},
			op:   opExtend(),
			want: []Event{
				{Type: EventExtend, KeyHash: hk, LockIDHash: hid, Result: ResultFail, Reason: driver.DetailNotFound},
				lost(driver.DetailNotFound),
			},
		},
		{
			name: "case147/extend-raw",
			fake: telemetryFakeDriver{acquire: telemetryHeld, extend: driver.ExtendResult{Detail: driver.DetailExpired}},
			opts: raw,
			op:   opExtend(),
			want: []Event{
				{Type: EventExtend, KeyHash: hk, LockIDHash: hid, Result: ResultFail, Reason: driver.DetailExpired, Key: telemetryTestKey, LockID: telemetryTestID},
				lost(driver.DetailExpired), // a lost lease never carries raw fields
			},
		},
		{
			name:     "case147/release-error",
			fake:     telemetryFakeDriver{acquire: telemetryHeld, err: driver.NewError(driver.Aborted, "cancelled")},
			op:       opRelease(),
			wantCode: driver.Aborted,
			want:     []Event{{Type: EventRelease, KeyHash: hk, LockIDHash: hid, Result: ResultError, Code: driver.Aborted}},
		},
		{
			name:     "case147/extend-error",
			fake:     telemetryFakeDriver{acquire: telemetryHeld, err: driver.NewError(driver.AuthFailed, "denied")},
			op:       opExtend(),
			wantCode: driver.AuthFailed,
			want:     []Event{{Type: EventExtend, KeyHash: hk, LockIDHash: hid, Result: ResultError, Code: driver.AuthFailed}},
		},
		{
			// The Guard refuses an invalid lock ID before any driver
			// call: nothing is hashed or reported.
			name:     "case147/invalid-lockid-not-reported",
			fake:     telemetryFakeDriver{},
			opts:     raw,
			op:       opLookupID("not a lock id"),
			wantCode: driver.InvalidArgument,
		},
	})
}

func TestTelemetryLookupEvents(t *testing.T) {
	hk, hid := driver.HashKey(telemetryTestKey), driver.HashKey(telemetryTestID)
	info := &driver.LockInfo{Key: telemetryTestKey, LockID: telemetryTestID, Fence: 3}
	raw := []Option{rawAll}
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case148/islocked-true",
			fake: telemetryFakeDriver{locked: true},
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case148/islocked-false-no-reason",
			fake: telemetryFakeDriver{locked: false},
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultFail}},
		},
		{
			name: "case148/islocked-raw",
			fake: telemetryFakeDriver{locked: true},
			opts: raw,
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK, Key: telemetryTestKey}},
		},
		{
			name: "case148/lookup-by-key-found",
			fake: telemetryFakeDriver{info: info},
			op:   opLookup(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case148/lookup-by-key-nil",
			fake: telemetryFakeDriver{},
			op:   opLookup(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultFail}},
		},
		{
			name: "case148/lookup-by-key-raw",
			fake: telemetryFakeDriver{info: info},
			opts: raw,
			op:   opLookup(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK, Key: telemetryTestKey}},
		},
		{
			name: "case148/lookup-by-id-found",
			fake: telemetryFakeDriver{info: info},
			op:   opLookupID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case148/lookup-by-id-nil",
			fake: telemetryFakeDriver{},
			op:   opLookupID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultFail}},
		},
		{
			name: "case148/lookup-by-id-raw",
			fake: telemetryFakeDriver{},
			opts: raw,
			op:   opLookupID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultFail, LockID: telemetryTestID}},
		},
		{
			name:     "case148/lookup-error",
			fake:     telemetryFakeDriver{err: driver.NewError(driver.AuthFailed, "denied")},
			op:       opLookup(telemetryTestKey),
			wantCode: driver.AuthFailed,
			want:     []Event{{Type: EventLookup, KeyHash: hk, Result: ResultError, Code: driver.AuthFailed}},
		},
	})
}

func TestTelemetryIsolation(t *testing.T) {
	fake := &telemetryFakeDriver{
		acquire: driver.AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 9, ExpiresAtMs: 42},
		release: driver.ReleaseResult{OK: true},
		extend:  driver.ExtendResult{OK: true, ExpiresAtMs: 43},
		locked:  true,
		info:    &driver.LockInfo{Key: telemetryTestKey, LockID: telemetryTestID, Fence: 9},
	}
	var calls int
	var mu sync.Mutex
	panicky := ObserverFunc(func(Event) {
		mu.Lock()
		calls++
		mu.Unlock()
		panic("observer")
	})
	ctx := context.Background()
	g := newTelemetryGuard(fake, panicky, rawAll)

	t.Run("case149/ops-return-normally", func(t *testing.T) {
		l, err := g.TryAcquire(ctx, telemetryTestKey)
		if err != nil || l.LockID() != telemetryTestID || FenceOf(l) != 9 || l.ExpiresAtMs() != 42 {
			t.Fatalf("TryAcquire = %+v, %v", l, err)
		}
		if ok, err := l.Extend(ctx, time.Second); err != nil || !ok || l.ExpiresAtMs() != 43 {
			t.Errorf("Extend = %v, %v (expiry %d)", ok, err, l.ExpiresAtMs())
		}
		if ok, err := l.Release(ctx); err != nil || !ok {
			t.Errorf("Release = %v, %v", ok, err)
		}
		if locked, err := g.IsLocked(ctx, telemetryTestKey); err != nil || !locked {
			t.Errorf("IsLocked = %v, %v", locked, err)
		}
		if info, err := g.Lookup(ctx, telemetryTestKey); err != nil || info == nil || info.Fence != 9 {
			t.Errorf("Lookup = %+v, %v", info, err)
		}
		if calls != 5 {
			t.Errorf("observer called %d times, want 5", calls)
		}
	})

	t.Run("case149/errors-unchanged", func(t *testing.T) {
		want := driver.NewError(driver.AuthFailed, "denied")
		errFake := &telemetryFakeDriver{acquire: telemetryHeld, err: want}
		g := newTelemetryGuard(errFake, panicky)
		l, err := g.TryAcquire(ctx, telemetryTestKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Release(ctx); err != want {
			t.Errorf("Release error = %v, want the driver's error value", err)
		}
		if _, err := g.IsLocked(ctx, telemetryTestKey); err != want {
			t.Errorf("IsLocked error = %v, want the driver's error value", err)
		}
		errFake.acquireErr = want
		if _, err := g.TryAcquire(ctx, telemetryTestKey); err != want {
			t.Errorf("TryAcquire error = %v, want the driver's error value", err)
		}
	})

	t.Run("case149/capabilities-unchanged", func(t *testing.T) {
		want := driver.Info{Name: "telemetry-fake", Fencing: true}
		if got := g.Capabilities(); got != want {
			t.Errorf("Capabilities = %+v, want %+v", got, want)
		}
	})

	t.Run("case149/arguments-pass-through", func(t *testing.T) {
		type ctxKey struct{}
		cctx := context.WithValue(ctx, ctxKey{}, 1)
		if _, err := g.TryAcquire(cctx, "cafe\u0301", TTL(1500*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		// The driver receives the caller's context and the normalised key.
		if fake.lastCtx != cctx || fake.lastArg != "caf\u00e9" || fake.lastTTL != 1500*time.Millisecond {
			t.Errorf("driver got ctx %v, key %q, ttl %v", fake.lastCtx, fake.lastArg, fake.lastTTL)
		}
	})
}

func TestTelemetryReasonMapping(t *testing.T) {
	// The Guard copies the driver's Detail; drivers map their own codes
	// (Redis 1 / −2 / 0 / −1) to Detail values, which the backend tests
	// cover. Here: every Detail a driver may report, for both operations.
	// A failed Extend also loses the lease.
	hk, hid := driver.HashKey(telemetryTestKey), driver.HashKey(telemetryTestID)
	details := []struct {
		name, detail, wantResult, wantReason string
		ok                                   bool
	}{
		{name: "success", ok: true, wantResult: ResultOK},
		{name: "success-ignores-detail", ok: true, detail: driver.DetailExpired, wantResult: ResultOK},
		{name: "expired", detail: driver.DetailExpired, wantResult: ResultFail, wantReason: driver.DetailExpired},
		{name: "not-found", detail: driver.DetailNotFound, wantResult: ResultFail, wantReason: driver.DetailNotFound},
		{name: "unknown-detail", detail: "", wantResult: ResultFail},
		{name: "other-detail-copied", detail: "mismatch", wantResult: ResultFail, wantReason: "mismatch"},
	}
	var cases []telemetryCase
	for _, dt := range details {
		extendEvents := []Event{{Type: EventExtend, KeyHash: hk, LockIDHash: hid, Result: dt.wantResult, Reason: dt.wantReason}}
		if !dt.ok {
			extendEvents = append(extendEvents, Event{Type: EventLost, KeyHash: hk, LockIDHash: hid, Result: ResultFail,
				Reason: "extend found the lock gone (" + dt.detail + ")"})
		}
		cases = append(cases,
			telemetryCase{
				name: "case150/release/" + dt.name,
				fake: telemetryFakeDriver{acquire: telemetryHeld, release: driver.ReleaseResult{OK: dt.ok, Detail: dt.detail}},
				op:   opRelease(),
				want: []Event{{Type: EventRelease, KeyHash: hk, LockIDHash: hid, Result: dt.wantResult, Reason: dt.wantReason}},
			},
			telemetryCase{
				name: "case150/extend/" + dt.name,
				fake: telemetryFakeDriver{acquire: telemetryHeld, extend: driver.ExtendResult{OK: dt.ok, Detail: dt.detail}},
				op:   opExtend(),
				want: extendEvents,
			},
		)
	}
	runTelemetryCases(t, cases)
}

func TestTelemetryLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &telemetryFakeDriver{delay: 50 * time.Millisecond, locked: true}
		rec := &telemetryRecorder{}
		g := newTelemetryGuard(fake, rec)
		if _, err := g.IsLocked(context.Background(), telemetryTestKey); err != nil {
			t.Fatal(err)
		}
		ev := rec.take()
		if len(ev) != 1 || ev[0].Latency != 50*time.Millisecond {
			t.Fatalf("events = %+v, want one with latency 50ms", ev)
		}
	})
}

// TestTelemetryRecordsAndRate: record calls (FencedWriter) and rate calls
// (RateLimiter) pass their arguments, results and errors through
// unchanged, and each record call and rate decision emits one event.
func TestTelemetryRecordsAndRate(t *testing.T) {
	ctx := context.Background()
	fake := &telemetryFakeDriver{acquire: driver.AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 5}, recErr: driver.NewError(driver.RateLimited, "quota")}
	rec := &telemetryRecorder{}
	g := newTelemetryGuard(fake, rec, rawAll)
	l, err := g.TryAcquire(ctx, telemetryTestKey)
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	w, err := NewFencedWriter(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, l, "rec", []byte("x")); driver.CodeOf(err) != driver.RateLimited {
		t.Errorf("Write = %v", err)
	}
	if diff := cmp.Diff([]any{Fence(5), "x"}, fake.putArgs); diff != "" {
		t.Errorf("PutRecord args (-want +got):\n%s", diff)
	}
	if r, err := w.Read(ctx, "rec"); r == nil || r.Fence != 7 || driver.CodeOf(err) != driver.RateLimited {
		t.Errorf("Read = %+v, %v", r, err)
	}
	lim, err := NewRateLimiter(fake, RateLimit{Limit: 1, Period: time.Second, Burst: 2}, WithObserver(rec), rawAll)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := lim.AllowN(ctx, "k", 2); r.Allowed != 2 || r.Remaining != 3 || driver.CodeOf(err) != driver.RateLimited {
		t.Errorf("AllowN = %+v, %v", r, err)
	}
	if err := lim.Reset(ctx, "k"); driver.CodeOf(err) != driver.RateLimited {
		t.Errorf("Reset = %v", err)
	}
	for _, m := range []string{"PutRecord", "GetRecord", "AllowN", "ResetRate"} {
		if n := fake.count(m); n != 1 {
			t.Errorf("%s called %d times, want 1", m, n)
		}
	}
	// Each record call is an event (a write and a read, errors here), and
	// the rate decision is, by every observer.
	var got []string
	for _, e := range rec.take() {
		got = append(got, string(e.Type)+" "+e.Result+" "+e.Code.String()+" "+e.Key)
	}
	want := []string{"record error RateLimited fenced:rec", "record error RateLimited fenced:rec", "rate error RateLimited k"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record/rate events (-want +got):\n%s", diff)
	}
}

// TestTelemetryRateEvents: a RateLimiter with an OperationObserver
// reports each decision.
func TestTelemetryRateEvents(t *testing.T) {
	ctx := context.Background()
	hk := driver.HashKey("rl:k")
	tests := []struct {
		name     string
		fake     telemetryFakeDriver
		opts     []Option
		n        int
		wantCode driver.Code
		want     Event
	}{
		{name: "allowed", n: 1, want: Event{Type: EventRate, KeyHash: hk, Result: ResultOK}},
		{name: "inspection-is-ok", n: 0, want: Event{Type: EventRate, KeyHash: hk, Result: ResultOK}},
		{name: "raw", n: 1, opts: []Option{rawAll}, want: Event{Type: EventRate, KeyHash: hk, Result: ResultOK, Key: "rl:k"}},
		{name: "error", n: 1, fake: telemetryFakeDriver{recErr: driver.NewError(driver.ServiceUnavailable, "down")}, wantCode: driver.ServiceUnavailable,
			want: Event{Type: EventRate, KeyHash: hk, Result: ResultError, Code: driver.ServiceUnavailable}},
	}
	for i := range tests {
		tc := &tests[i]
		t.Run(tc.name, func(t *testing.T) {
			rec := &telemetryOpRecorder{}
			lim, err := NewRateLimiter(&tc.fake, RateLimit{Limit: 1, Period: time.Second, Burst: 1},
				append([]Option{WithObserver(rec), WithPrefix("rl:")}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lim.AllowN(ctx, "k", tc.n); driver.CodeOf(err) != tc.wantCode {
				t.Fatalf("AllowN = %v, want code %v", err, tc.wantCode)
			}
			if diff := cmp.Diff([]Event{tc.want}, rec.take(), ignoreLatency); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("limited", func(t *testing.T) {
		rec := &telemetryOpRecorder{}
		lim, err := NewRateLimiter(refusingRates{}, RateLimit{Limit: 1, Period: time.Second, Burst: 1}, WithObserver(rec))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := lim.Allow(ctx, "k"); ok || err != nil {
			t.Fatalf("Allow = %v, %v; want false, nil", ok, err)
		}
		want := []Event{{Type: EventRate, KeyHash: driver.HashKey("k"), Result: ResultFail, Reason: reasonLimited}}
		if diff := cmp.Diff(want, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

// refusingRates is a RateStore that refuses every request.
type refusingRates struct{}

func (refusingRates) AllowN(context.Context, string, RateLimit, int) (RateResult, error) {
	return RateResult{RetryAfter: time.Second}, nil
}

func (refusingRates) ResetRate(context.Context, string) error { return nil }

// TestTelemetryWatchAndHandoff: waiting through a ReleaseWatcher emits no
// event of its own, only one acquire event per attempt; the attempts of a
// hand-off waiter are reported as acquire events, marked Handoff for an
// OperationObserver only.
func TestTelemetryWatchAndHandoff(t *testing.T) {
	t.Run("release-watcher", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			fake := &telemetryWatchDriver{telemetryFakeDriver{acquire: driver.AcquireResult{Reason: driver.ReasonLocked}, watch: make(chan struct{})}}
			rec := &telemetryRecorder{}
			g := newTelemetryGuard(fake, rec)
			_, err := g.Acquire(context.Background(), telemetryTestKey, MaxRetries(2), RetryDelay(time.Millisecond))
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("Acquire = %v, want ErrLocked", err)
			}
			if n := fake.count("WatchRelease"); n != 1 {
				t.Errorf("WatchRelease called %d times, want 1", n)
			}
			contended := Event{Type: EventAcquire, KeyHash: driver.HashKey(telemetryTestKey), Result: ResultFail, Reason: driver.ReasonLocked}
			if diff := cmp.Diff([]Event{contended, contended, contended}, rec.take(), ignoreLatency); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	})

	for _, ops := range []bool{false, true} {
		name := "handoff/plain-observer"
		if ops {
			name = "handoff/operation-observer"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeHandoffDriver{
					fakeDriver: newFakeDriver().onAcquire(contendedStep(), contendedStep(), acquiredStep(7)),
					ch:         make(chan struct{}, 1),
				}
				var obs Observer
				var take func() []Event
				if ops {
					r := &telemetryOpRecorder{}
					obs, take = r, r.take
				} else {
					r := &telemetryRecorder{}
					obs, take = r, r.take
				}
				g := newFakeGuard(f, WithObserver(obs), WithRawEvents(func(Event) bool { return true }))
				time.AfterFunc(40*time.Millisecond, func() { f.ch <- struct{}{} }) // the grant
				l, err := g.Acquire(context.Background(), "k", RetryDelay(time.Second), Backoff(BackoffFixed), Jitter(JitterNone))
				if err != nil {
					t.Fatal(err)
				}
				l.Close()
				hk := driver.HashKey("k")
				want := []Event{
					{Type: EventAcquire, KeyHash: hk, Key: "k", Result: ResultFail, Reason: driver.ReasonLocked},
					{Type: EventAcquire, KeyHash: hk, Key: "k", Result: ResultFail, Reason: driver.ReasonLocked, Handoff: ops},
					{Type: EventAcquire, KeyHash: hk, Key: "k", LockID: fakeLockID(7), Result: ResultOK, Handoff: ops},
				}
				var got []Event
				for _, e := range take() {
					if e.Type == EventAcquire {
						got = append(got, e)
					}
				}
				if diff := cmp.Diff(want, got, ignoreLatency); diff != "" {
					t.Errorf("acquire events (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestTelemetryNilObserver: a nil observer leaves the Guard calling its
// driver directly.
func TestTelemetryNilObserver(t *testing.T) {
	fake := &telemetryFakeDriver{}
	for _, o := range []Observer{nil, ObserverFunc(nil)} {
		g := New(fake, WithObserver(o))
		if g.d != driver.LockStore(fake) {
			t.Errorf("WithObserver(%#v): the Guard calls %T, want the driver itself", o, g.d)
		}
	}
}

func TestTelemetryMultiObserver(t *testing.T) {
	a, b := &telemetryRecorder{}, &telemetryRecorder{}
	m := MultiObserver(a, nil, ObserverFunc(func(Event) { panic("middle") }), ObserverFunc(nil), b)
	e := Event{Type: EventLost, Result: ResultFail, Reason: "extend failed"}
	m.OnEvent(e)
	for i, r := range []*telemetryRecorder{a, b} {
		if diff := cmp.Diff([]Event{e}, r.take()); diff != "" {
			t.Errorf("observer %d (-want +got):\n%s", i, diff)
		}
	}
	MultiObserver().OnEvent(e) // no observers: no panic
}

func TestTelemetryConcurrentUse(t *testing.T) {
	fake := &telemetryFakeDriver{acquire: telemetryHeld}
	rec := &telemetryRecorder{}
	g := newTelemetryGuard(fake, rec, WithRawEvents(func(e Event) bool { return e.Result == ResultOK }))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_, _ = g.TryAcquire(context.Background(), telemetryTestKey)
			}
		})
	}
	wg.Wait()
	ev := rec.take()
	if len(ev) != 400 {
		t.Errorf("%d events, want 400", len(ev))
	}
	for _, e := range ev {
		if e.Key != telemetryTestKey || e.LockID != telemetryTestID {
			t.Fatalf("event %+v lacks the raw fields its predicate asked for", e)
		}
	}
}

func BenchmarkTelemetryAcquire(b *testing.B) {
	fake := &telemetryFakeDriver{acquire: telemetryHeld}
	g := newTelemetryGuard(fake, ObserverFunc(func(Event) {}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = g.TryAcquire(ctx, telemetryTestKey)
	}
}
