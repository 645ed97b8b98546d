package syncguard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// telemetryFakeCaps is the capability type of telemetryFakeDriver.
type telemetryFakeCaps struct {
	WithFencing
}

func (telemetryFakeCaps) Name() string { return "telemetry-fake" }

// telemetryFakeDriver is a scripted Driver: every method returns the
// configured result and counts its calls. delay, if set, is slept in every
// lock call (for latency checks under synctest).
type telemetryFakeDriver struct {
	acquire    AcquireResult
	release    ReleaseResult
	extend     ExtendResult
	locked     bool
	info       *LockInfo
	raw        *RawLockInfo
	err        error // returned by every lock method
	recErr     error // returned by every record/rate method
	delay      time.Duration
	mu         sync.Mutex
	calls      map[string]int
	lastCtx    context.Context
	lastArg    string
	lastTTL    time.Duration
	putArgs    []any
	capability telemetryFakeCaps
}

func (f *telemetryFakeDriver) record(method string, ctx context.Context, arg string, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[method]++
	f.lastCtx, f.lastArg, f.lastTTL = ctx, arg, ttl
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
}

func (f *telemetryFakeDriver) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *telemetryFakeDriver) Capabilities() telemetryFakeCaps { return f.capability }

func (f *telemetryFakeDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (AcquireResult, error) {
	f.record("Acquire", ctx, key, ttl)
	return f.acquire, f.err
}

func (f *telemetryFakeDriver) Release(ctx context.Context, lockID string) (ReleaseResult, error) {
	f.record("Release", ctx, lockID, 0)
	return f.release, f.err
}

func (f *telemetryFakeDriver) Extend(ctx context.Context, lockID string, ttl time.Duration) (ExtendResult, error) {
	f.record("Extend", ctx, lockID, ttl)
	return f.extend, f.err
}

func (f *telemetryFakeDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	f.record("IsLocked", ctx, key, 0)
	return f.locked, f.err
}

func (f *telemetryFakeDriver) LookupByKey(ctx context.Context, key string) (*LockInfo, error) {
	f.record("LookupByKey", ctx, key, 0)
	return f.info, f.err
}

func (f *telemetryFakeDriver) LookupByID(ctx context.Context, lockID string) (*LockInfo, error) {
	f.record("LookupByID", ctx, lockID, 0)
	return f.info, f.err
}

func (f *telemetryFakeDriver) PutRecord(ctx context.Context, name string, fence Fence, value []byte, ttl time.Duration) (PutResult, error) {
	f.record("PutRecord", ctx, name, ttl)
	f.mu.Lock()
	f.putArgs = []any{fence, string(value)}
	f.mu.Unlock()
	return PutResult{Stored: true, Fence: fence}, f.recErr
}

func (f *telemetryFakeDriver) GetRecord(ctx context.Context, name string) (*Record, error) {
	f.record("GetRecord", ctx, name, 0)
	return &Record{Value: []byte("v"), Fence: 7}, f.recErr
}

func (f *telemetryFakeDriver) DeleteRecord(ctx context.Context, name string, fence Fence) (bool, error) {
	f.record("DeleteRecord", ctx, name, 0)
	return true, f.recErr
}

func (f *telemetryFakeDriver) AllowN(ctx context.Context, key string, limit RateLimit, n int) (RateResult, error) {
	f.record("AllowN", ctx, key, 0)
	return RateResult{Allowed: n, Remaining: 3}, f.recErr
}

func (f *telemetryFakeDriver) ResetRate(ctx context.Context, key string) error {
	f.record("ResetRate", ctx, key, 0)
	return f.recErr
}

// telemetryFakeRawDriver adds the optional RawLookup and ReleaseWatcher
// interfaces to telemetryFakeDriver.
type telemetryFakeRawDriver struct {
	telemetryFakeDriver
	watch chan struct{}
}

func (f *telemetryFakeRawDriver) LookupRawByKey(ctx context.Context, key string) (*RawLockInfo, error) {
	f.record("LookupRawByKey", ctx, key, 0)
	return f.raw, f.err
}

func (f *telemetryFakeRawDriver) LookupRawByID(ctx context.Context, lockID string) (*RawLockInfo, error) {
	f.record("LookupRawByID", ctx, lockID, 0)
	return f.raw, f.err
}

func (f *telemetryFakeRawDriver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	f.record("WatchRelease", ctx, key, 0)
	return f.watch, func() {}, f.err
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

// Compile-time checks: the decorator implements the optional interfaces.
var (
	_ ReleaseWatcher   = (*telemetryDriver[telemetryFakeCaps])(nil)
	_ RawLookup        = (*telemetryDriver[telemetryFakeCaps])(nil)
	_ backendUnwrapper = (*telemetryDriver[telemetryFakeCaps])(nil)
)

const (
	telemetryTestKey = "resource:123"
	telemetryTestID  = "AAAAAAAAAAAAAAAAAAAAAA"
	telemetryOtherID = "abcdefghijklmnopqrstuv"
)

var ignoreLatency = cmpopts.IgnoreFields(Event{}, "Latency")

// telemetryOp runs one lock call against d.
type telemetryOp func(ctx context.Context, d Driver[telemetryFakeCaps]) error

func opAcquire(key string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.Acquire(ctx, key, time.Second)
		return err
	}
}

func opRelease(id string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.Release(ctx, id)
		return err
	}
}

func opExtend(id string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.Extend(ctx, id, time.Second)
		return err
	}
}

func opIsLocked(key string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.IsLocked(ctx, key)
		return err
	}
}

func opLookupByKey(key string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.LookupByKey(ctx, key)
		return err
	}
}

func opLookupByID(id string) telemetryOp {
	return func(ctx context.Context, d Driver[telemetryFakeCaps]) error {
		_, err := d.LookupByID(ctx, id)
		return err
	}
}

// telemetryCase is one scripted call and the events it must produce.
type telemetryCase struct {
	name string
	fake telemetryFakeDriver
	opts []TelemetryOption
	op   telemetryOp
	want []Event
}

func runTelemetryCases(t *testing.T, cases []telemetryCase) {
	t.Helper()
	for i := range cases {
		tc := &cases[i]
		t.Run(tc.name, func(t *testing.T) {
			fake := &tc.fake
			rec := &telemetryRecorder{}
			d := WithTelemetry[telemetryFakeCaps](fake, rec, tc.opts...)
			wantErr := fake.err
			if err := tc.op(context.Background(), d); !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, wantErr)
			}
			if diff := cmp.Diff(tc.want, rec.take(), ignoreLatency); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTelemetryAcquireEvents(t *testing.T) {
	hk := HashKey(telemetryTestKey)
	acquired := AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 1, ExpiresAtMs: 1000}
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case145/success",
			fake: telemetryFakeDriver{acquire: acquired},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case145/contention",
			fake: telemetryFakeDriver{acquire: AcquireResult{Reason: ReasonLocked}},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: ReasonLocked}},
		},
		{
			name: "case145/contention-without-driver-reason",
			fake: telemetryFakeDriver{acquire: AcquireResult{}},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: ReasonLocked}},
		},
		{
			name: "case145/key-hash-of-normalised-key",
			fake: telemetryFakeDriver{acquire: acquired},
			op:   opAcquire("cafe\u0301"),
			want: []Event{{Type: EventAcquire, KeyHash: "850f7dc43910ff890f8879c0", Result: ResultOK}},
		},
		{
			name: "case145/error-has-code",
			fake: telemetryFakeDriver{err: NewError(ServiceUnavailable, "down")},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: ServiceUnavailable}},
		},
		{
			name: "case145/non-lock-error-is-internal",
			fake: telemetryFakeDriver{err: errors.New("boom")},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: Internal}},
		},
		{
			name: "case145/invalid-key-not-hashed",
			fake: telemetryFakeDriver{err: NewError(InvalidArgument, msgKeyTooLong)},
			opts: []TelemetryOption{IncludeRaw(true)},
			op:   opAcquire(strings.Repeat("x", 10<<20)),
			want: []Event{{Type: EventAcquire, Result: ResultError, Code: InvalidArgument}},
		},
		{
			name: "case145/error-with-raw-keeps-key",
			fake: telemetryFakeDriver{err: NewError(NetworkTimeout, "slow")},
			opts: []TelemetryOption{IncludeRaw(true)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultError, Code: NetworkTimeout, Key: telemetryTestKey}},
		},
	})
}

func TestTelemetryRawFields(t *testing.T) {
	hk := HashKey(telemetryTestKey)
	acquired := AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 1}
	okEvent := Event{Type: EventAcquire, KeyHash: hk, Result: ResultOK}
	rawEvent := okEvent
	rawEvent.Key, rawEvent.LockID = telemetryTestKey, telemetryTestID

	runTelemetryCases(t, []telemetryCase{
		{
			name: "case146/include-raw-true",
			fake: telemetryFakeDriver{acquire: acquired},
			opts: []TelemetryOption{IncludeRaw(true)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{rawEvent},
		},
		{
			name: "case146/include-raw-false",
			fake: telemetryFakeDriver{acquire: acquired},
			opts: []TelemetryOption{IncludeRaw(false)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/default-is-redacted",
			fake: telemetryFakeDriver{acquire: acquired},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/contention-has-key-but-no-lockid",
			fake: telemetryFakeDriver{acquire: AcquireResult{Reason: ReasonLocked, LockID: telemetryOtherID}},
			opts: []TelemetryOption{IncludeRaw(true)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{{Type: EventAcquire, KeyHash: hk, Result: ResultFail, Reason: ReasonLocked, Key: telemetryTestKey}},
		},
		{
			name: "case146/raw-key-is-normalised",
			fake: telemetryFakeDriver{acquire: AcquireResult{Reason: ReasonLocked}},
			opts: []TelemetryOption{IncludeRaw(true)},
			op:   opAcquire("cafe\u0301"),
			want: []Event{{Type: EventAcquire, KeyHash: HashKey("café"), Result: ResultFail, Reason: ReasonLocked, Key: "caf\u00e9"}},
		},
		{
			name: "case146/nil-predicate-is-off",
			fake: telemetryFakeDriver{acquire: acquired},
			opts: []TelemetryOption{IncludeRawFunc(nil)},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
		{
			name: "case146/last-option-wins",
			fake: telemetryFakeDriver{acquire: acquired},
			opts: []TelemetryOption{IncludeRaw(true), IncludeRawFunc(func(Event) bool { return false })},
			op:   opAcquire(telemetryTestKey),
			want: []Event{okEvent},
		},
	})

	t.Run("case146/predicate-selecting-acquire", func(t *testing.T) {
		fake := &telemetryFakeDriver{acquire: acquired, release: ReleaseResult{OK: true}}
		rec := &telemetryRecorder{}
		var seen []Event
		pred := func(e Event) bool {
			seen = append(seen, e)
			return e.Type == EventAcquire
		}
		d := WithTelemetry[telemetryFakeCaps](fake, rec, IncludeRawFunc(pred))
		if _, err := d.Acquire(context.Background(), telemetryTestKey, time.Second); err != nil {
			t.Fatal(err)
		}
		if got := len(seen); got != 1 {
			t.Fatalf("predicate called %d times for one acquire, want 1", got)
		}
		if diff := cmp.Diff(okEvent, seen[0], ignoreLatency); diff != "" {
			t.Errorf("predicate saw (-want +got):\n%s", diff)
		}
		if _, err := d.Release(context.Background(), telemetryTestID); err != nil {
			t.Fatal(err)
		}
		want := []Event{
			rawEvent,
			{Type: EventRelease, LockIDHash: HashKey(telemetryTestID), Result: ResultOK},
		}
		if diff := cmp.Diff(want, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("case146/panicking-predicate-redacts", func(t *testing.T) {
		fake := &telemetryFakeDriver{acquire: acquired}
		rec := &telemetryRecorder{}
		d := WithTelemetry[telemetryFakeCaps](fake, rec, IncludeRawFunc(func(Event) bool { panic("predicate") }))
		res, err := d.Acquire(context.Background(), telemetryTestKey, time.Second)
		if err != nil || res != acquired {
			t.Fatalf("Acquire = %+v, %v; want %+v, nil", res, err, acquired)
		}
		if diff := cmp.Diff([]Event{okEvent}, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestTelemetryReleaseExtendEvents(t *testing.T) {
	hid := HashKey(telemetryTestID)
	raw := []TelemetryOption{IncludeRaw(true)}
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case147/release-ok",
			fake: telemetryFakeDriver{release: ReleaseResult{OK: true}},
			op:   opRelease(telemetryTestID),
			want: []Event{{Type: EventRelease, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case147/release-expired",
			fake: telemetryFakeDriver{release: ReleaseResult{Detail: DetailExpired}},
			op:   opRelease(telemetryTestID),
			want: []Event{{Type: EventRelease, LockIDHash: hid, Result: ResultFail, Reason: DetailExpired}},
		},
		{
			name: "case147/release-raw",
			fake: telemetryFakeDriver{release: ReleaseResult{OK: true}},
			opts: raw,
			op:   opRelease(telemetryTestID),
			want: []Event{{Type: EventRelease, LockIDHash: hid, Result: ResultOK, LockID: telemetryTestID}},
		},
		{
			name: "case147/extend-ok",
			fake: telemetryFakeDriver{extend: ExtendResult{OK: true, ExpiresAtMs: 5}},
			op:   opExtend(telemetryTestID),
			want: []Event{{Type: EventExtend, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case147/extend-not-found",
			fake: telemetryFakeDriver{extend: ExtendResult{Detail: DetailNotFound}},
			op:   opExtend(telemetryTestID),
			want: []Event{{Type: EventExtend, LockIDHash: hid, Result: ResultFail, Reason: DetailNotFound}},
		},
		{
			name: "case147/extend-raw",
			fake: telemetryFakeDriver{extend: ExtendResult{Detail: DetailExpired}},
			opts: raw,
			op:   opExtend(telemetryTestID),
			want: []Event{{Type: EventExtend, LockIDHash: hid, Result: ResultFail, Reason: DetailExpired, LockID: telemetryTestID}},
		},
		{
			name: "case147/release-error",
			fake: telemetryFakeDriver{err: NewError(Aborted, "cancelled")},
			op:   opRelease(telemetryTestID),
			want: []Event{{Type: EventRelease, LockIDHash: hid, Result: ResultError, Code: Aborted}},
		},
		{
			name: "case147/invalid-lockid-not-hashed",
			fake: telemetryFakeDriver{err: NewError(InvalidArgument, msgBadLockID)},
			opts: raw,
			op:   opExtend("not a lock id"),
			want: []Event{{Type: EventExtend, Result: ResultError, Code: InvalidArgument}},
		},
	})
}

func TestTelemetryIsLockedLookupEvents(t *testing.T) {
	hk, hid := HashKey(telemetryTestKey), HashKey(telemetryTestID)
	info := &LockInfo{KeyHash: hk, LockIDHash: hid, Fence: 3}
	raw := []TelemetryOption{IncludeRaw(true)}
	runTelemetryCases(t, []telemetryCase{
		{
			name: "case148/islocked-true",
			fake: telemetryFakeDriver{locked: true},
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventIsLocked, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case148/islocked-false-no-reason",
			fake: telemetryFakeDriver{locked: false},
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventIsLocked, KeyHash: hk, Result: ResultFail}},
		},
		{
			name: "case148/islocked-raw",
			fake: telemetryFakeDriver{locked: true},
			opts: raw,
			op:   opIsLocked(telemetryTestKey),
			want: []Event{{Type: EventIsLocked, KeyHash: hk, Result: ResultOK, Key: telemetryTestKey}},
		},
		{
			name: "case148/lookup-by-key-found",
			fake: telemetryFakeDriver{info: info},
			op:   opLookupByKey(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK}},
		},
		{
			name: "case148/lookup-by-key-nil",
			fake: telemetryFakeDriver{},
			op:   opLookupByKey(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultFail}},
		},
		{
			name: "case148/lookup-by-key-raw",
			fake: telemetryFakeDriver{info: info},
			opts: raw,
			op:   opLookupByKey(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultOK, Key: telemetryTestKey}},
		},
		{
			name: "case148/lookup-by-id-found",
			fake: telemetryFakeDriver{info: info},
			op:   opLookupByID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultOK}},
		},
		{
			name: "case148/lookup-by-id-nil",
			fake: telemetryFakeDriver{},
			op:   opLookupByID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultFail}},
		},
		{
			name: "case148/lookup-by-id-raw",
			fake: telemetryFakeDriver{},
			opts: raw,
			op:   opLookupByID(telemetryTestID),
			want: []Event{{Type: EventLookup, LockIDHash: hid, Result: ResultFail, LockID: telemetryTestID}},
		},
		{
			name: "case148/lookup-error",
			fake: telemetryFakeDriver{err: NewError(AuthFailed, "denied")},
			op:   opLookupByKey(telemetryTestKey),
			want: []Event{{Type: EventLookup, KeyHash: hk, Result: ResultError, Code: AuthFailed}},
		},
	})
}

func TestTelemetryIsolation(t *testing.T) {
	fake := &telemetryFakeDriver{
		acquire:    AcquireResult{Acquired: true, LockID: telemetryTestID, Fence: 9, ExpiresAtMs: 42},
		release:    ReleaseResult{OK: true},
		extend:     ExtendResult{OK: true, ExpiresAtMs: 43},
		locked:     true,
		info:       &LockInfo{Fence: 9},
		capability: telemetryFakeCaps{},
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
	d := WithTelemetry[telemetryFakeCaps](fake, panicky, IncludeRaw(true))

	t.Run("case149/ops-return-normally", func(t *testing.T) {
		if res, err := d.Acquire(ctx, telemetryTestKey, time.Second); err != nil || res != fake.acquire {
			t.Errorf("Acquire = %+v, %v", res, err)
		}
		if res, err := d.Release(ctx, telemetryTestID); err != nil || res != fake.release {
			t.Errorf("Release = %+v, %v", res, err)
		}
		if res, err := d.Extend(ctx, telemetryTestID, time.Second); err != nil || res != fake.extend {
			t.Errorf("Extend = %+v, %v", res, err)
		}
		if locked, err := d.IsLocked(ctx, telemetryTestKey); err != nil || !locked {
			t.Errorf("IsLocked = %v, %v", locked, err)
		}
		if info, err := d.LookupByKey(ctx, telemetryTestKey); err != nil || info != fake.info {
			t.Errorf("LookupByKey = %v, %v", info, err)
		}
		if calls != 5 {
			t.Errorf("observer called %d times, want 5", calls)
		}
	})

	t.Run("case149/errors-unchanged", func(t *testing.T) {
		want := NewError(NetworkTimeout, "slow")
		errFake := &telemetryFakeDriver{err: want}
		d := WithTelemetry[telemetryFakeCaps](errFake, panicky)
		if _, err := d.Acquire(ctx, telemetryTestKey, time.Second); err != want {
			t.Errorf("Acquire error = %v, want the driver's error value", err)
		}
		if _, err := d.Release(ctx, telemetryTestID); err != want {
			t.Errorf("Release error = %v, want the driver's error value", err)
		}
	})

	t.Run("case149/capabilities-pass-through", func(t *testing.T) {
		if got := d.Capabilities(); got != fake.Capabilities() {
			t.Errorf("Capabilities = %v, want %v", got, fake.Capabilities())
		}
		want := CapabilityInfo{Name: "telemetry-fake", SupportsFencing: true, TimeAuthority: TimeAuthorityClient}
		if got := Describe(d.Capabilities()); got != want {
			t.Errorf("Describe = %+v, want %+v", got, want)
		}
	})

	t.Run("case149/arguments-pass-through", func(t *testing.T) {
		type ctxKey struct{}
		cctx := context.WithValue(ctx, ctxKey{}, 1)
		if _, err := d.Acquire(cctx, "cafe\u0301", 1500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if fake.lastCtx != cctx || fake.lastArg != "cafe\u0301" || fake.lastTTL != 1500*time.Millisecond {
			t.Errorf("driver got ctx %v, key %q, ttl %v", fake.lastCtx, fake.lastArg, fake.lastTTL)
		}
	})
}

func TestTelemetryReasonMapping(t *testing.T) {
	// The decorator copies the driver's Detail; drivers map their own codes
	// (Redis 1 / −2 / 0 / −1) to Detail values, which the backend tests
	// cover. Here: every Detail a driver may report, for both operations.
	hid := HashKey(telemetryTestID)
	details := []struct {
		name, detail, wantResult, wantReason string
		ok                                   bool
	}{
		{name: "success", ok: true, wantResult: ResultOK},
		{name: "success-ignores-detail", ok: true, detail: DetailExpired, wantResult: ResultOK},
		{name: "expired", detail: DetailExpired, wantResult: ResultFail, wantReason: DetailExpired},
		{name: "not-found", detail: DetailNotFound, wantResult: ResultFail, wantReason: DetailNotFound},
		{name: "unknown-detail", detail: "", wantResult: ResultFail},
		{name: "other-detail-copied", detail: "mismatch", wantResult: ResultFail, wantReason: "mismatch"},
	}
	var cases []telemetryCase
	for _, dt := range details {
		cases = append(cases,
			telemetryCase{
				name: "case150/release/" + dt.name,
				fake: telemetryFakeDriver{release: ReleaseResult{OK: dt.ok, Detail: dt.detail}},
				op:   opRelease(telemetryTestID),
				want: []Event{{Type: EventRelease, LockIDHash: hid, Result: dt.wantResult, Reason: dt.wantReason}},
			},
			telemetryCase{
				name: "case150/extend/" + dt.name,
				fake: telemetryFakeDriver{extend: ExtendResult{OK: dt.ok, Detail: dt.detail}},
				op:   opExtend(telemetryTestID),
				want: []Event{{Type: EventExtend, LockIDHash: hid, Result: dt.wantResult, Reason: dt.wantReason}},
			},
		)
	}
	runTelemetryCases(t, cases)
}

func TestTelemetryLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := &telemetryFakeDriver{delay: 50 * time.Millisecond, locked: true}
		rec := &telemetryRecorder{}
		d := WithTelemetry[telemetryFakeCaps](fake, rec)
		if _, err := d.IsLocked(context.Background(), telemetryTestKey); err != nil {
			t.Fatal(err)
		}
		ev := rec.take()
		if len(ev) != 1 || ev[0].Latency != 50*time.Millisecond {
			t.Fatalf("events = %+v, want one with latency 50ms", ev)
		}
	})
}

func TestTelemetryPassThrough(t *testing.T) {
	ctx := context.Background()
	fake := &telemetryFakeDriver{recErr: NewError(RateLimited, "quota")}
	rec := &telemetryRecorder{}
	d := WithTelemetry[telemetryFakeCaps](fake, rec, IncludeRaw(true))

	if res, err := d.PutRecord(ctx, "rec", 5, []byte("x"), time.Minute); !res.Stored || res.Fence != 5 || CodeOf(err) != RateLimited {
		t.Errorf("PutRecord = %+v, %v", res, err)
	}
	if diff := cmp.Diff([]any{Fence(5), "x"}, fake.putArgs); diff != "" {
		t.Errorf("PutRecord args (-want +got):\n%s", diff)
	}
	if r, err := d.GetRecord(ctx, "rec"); r == nil || r.Fence != 7 || CodeOf(err) != RateLimited {
		t.Errorf("GetRecord = %+v, %v", r, err)
	}
	if ok, err := d.DeleteRecord(ctx, "rec", 5); !ok || CodeOf(err) != RateLimited {
		t.Errorf("DeleteRecord = %v, %v", ok, err)
	}
	if r, err := d.AllowN(ctx, "k", RateLimit{Limit: 1, Period: time.Second, Burst: 1}, 2); r.Allowed != 2 || r.Remaining != 3 || CodeOf(err) != RateLimited {
		t.Errorf("AllowN = %+v, %v", r, err)
	}
	if err := d.ResetRate(ctx, "k"); CodeOf(err) != RateLimited {
		t.Errorf("ResetRate = %v", err)
	}
	for _, m := range []string{"PutRecord", "GetRecord", "DeleteRecord", "AllowN", "ResetRate"} {
		if n := fake.count(m); n != 1 {
			t.Errorf("%s called %d times, want 1", m, n)
		}
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("record/rate methods emitted events: %+v", ev)
	}
	if u, ok := d.(interface{ Unwrap() Backend }); !ok || u.Unwrap() != Backend(fake) {
		t.Errorf("Unwrap does not return the decorated driver")
	}
}

func TestTelemetryNilObserver(t *testing.T) {
	fake := &telemetryFakeDriver{}
	if d := WithTelemetry[telemetryFakeCaps](fake, nil); d != Driver[telemetryFakeCaps](fake) {
		t.Errorf("WithTelemetry(d, nil) = %T, want d itself", d)
	}
	if d := WithTelemetry[telemetryFakeCaps](fake, ObserverFunc(nil)); d != Driver[telemetryFakeCaps](fake) {
		t.Errorf("WithTelemetry(d, ObserverFunc(nil)) = %T, want d itself", d)
	}
}

func TestTelemetryOptionalInterfaces(t *testing.T) {
	ctx := context.Background()

	t.Run("unsupported", func(t *testing.T) {
		fake := &telemetryFakeDriver{}
		rec := &telemetryRecorder{}
		d := WithTelemetry[telemetryFakeCaps](fake, rec)
		if _, ok := AsReleaseWatcher(d); ok {
			t.Error("AsReleaseWatcher found a watcher in a driver without one")
		}
		if _, ok := AsRawLookup(d); ok {
			t.Error("AsRawLookup found a raw lookup in a driver without one")
		}
		tw := d.(ReleaseWatcher)
		ch, stop, err := tw.WatchRelease(ctx, telemetryTestKey)
		if ch != nil || stop != nil || CodeOf(err) != Internal || err.Error() != msgNotSupported {
			t.Errorf("WatchRelease = %v, %v, %v; want Internal %q", ch, stop != nil, err, msgNotSupported)
		}
		tr := d.(RawLookup)
		if info, err := tr.LookupByKey(ctx, telemetryTestKey); info != nil || CodeOf(err) != Internal {
			t.Errorf("LookupRawByKey = %v, %v; want Internal", info, err)
		}
		if info, err := tr.LookupByID(ctx, telemetryTestID); info != nil || CodeOf(err) != Internal {
			t.Errorf("LookupRawByID = %v, %v; want Internal", info, err)
		}
		if ev := rec.take(); len(ev) != 0 {
			t.Errorf("unsupported calls emitted events: %+v", ev)
		}
	})

	t.Run("supported", func(t *testing.T) {
		raw := &RawLockInfo{LockInfo: LockInfo{Fence: 2}, Key: telemetryTestKey, LockID: telemetryTestID}
		fake := &telemetryFakeRawDriver{watch: make(chan struct{})}
		fake.raw = raw
		rec := &telemetryRecorder{}
		d := WithTelemetry[telemetryFakeCaps](fake, rec)
		dd := WithTelemetry[telemetryFakeCaps](d, rec) // decorators stack

		w, ok := AsReleaseWatcher(dd)
		if !ok || w != ReleaseWatcher(dd.(*telemetryDriver[telemetryFakeCaps])) {
			t.Fatalf("AsReleaseWatcher = %T, %v; want the outermost decorator", w, ok)
		}
		ch, stop, err := w.WatchRelease(ctx, telemetryTestKey)
		if err != nil || ch != (<-chan struct{})(fake.watch) || stop == nil {
			t.Errorf("WatchRelease = %v, %v, %v", ch, stop != nil, err)
		}
		r, ok := AsRawLookup(dd)
		if !ok {
			t.Fatal("AsRawLookup: not found")
		}
		if got, err := r.LookupByKey(ctx, telemetryTestKey); err != nil || got != raw {
			t.Errorf("LookupRawByKey = %v, %v", got, err)
		}
		if got, err := r.LookupByID(ctx, telemetryTestID); err != nil || got != raw {
			t.Errorf("LookupRawByID = %v, %v", got, err)
		}
		if fake.count("WatchRelease") != 1 || fake.count("LookupRawByKey") != 1 || fake.count("LookupRawByID") != 1 {
			t.Errorf("driver calls = %v", fake.calls)
		}
		// Both decorators observe each raw lookup; watching emits nothing.
		kEv := Event{Type: EventLookup, KeyHash: HashKey(telemetryTestKey), Result: ResultOK}
		idEv := Event{Type: EventLookup, LockIDHash: HashKey(telemetryTestID), Result: ResultOK}
		if diff := cmp.Diff([]Event{kEv, kEv, idEv, idEv}, rec.take(), ignoreLatency); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("bare-driver", func(t *testing.T) {
		fake := &telemetryFakeRawDriver{}
		if w, ok := AsReleaseWatcher(fake); !ok || w != ReleaseWatcher(fake) {
			t.Errorf("AsReleaseWatcher(bare) = %v, %v", w, ok)
		}
		if _, ok := AsRawLookup(&telemetryFakeDriver{}); ok {
			t.Error("AsRawLookup(bare without support) = true")
		}
		if _, ok := AsRawLookup(nil); ok {
			t.Error("AsRawLookup(nil) = true")
		}
	})

	t.Run("cycle", func(t *testing.T) {
		c := &telemetryCycleBackend{}
		c.next = c
		if _, ok := AsRawLookup(c); ok {
			t.Error("AsRawLookup on a cyclic chain = true")
		}
	})
}

// telemetryCycleBackend is a wrapper whose Unwrap chain never ends.
type telemetryCycleBackend struct {
	telemetryFakeRawDriver
	next Backend
}

func (c *telemetryCycleBackend) Unwrap() Backend { return c.next }

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
	fake := &telemetryFakeDriver{acquire: AcquireResult{Acquired: true, LockID: telemetryTestID}}
	rec := &telemetryRecorder{}
	d := WithTelemetry[telemetryFakeCaps](fake, rec, IncludeRawFunc(func(e Event) bool { return e.Result == ResultOK }))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				_, _ = d.Acquire(context.Background(), telemetryTestKey, time.Second)
			}
		})
	}
	wg.Wait()
	if n := len(rec.take()); n != 400 {
		t.Errorf("%d events, want 400", n)
	}
}

func BenchmarkTelemetryAcquire(b *testing.B) {
	fake := &telemetryFakeDriver{acquire: AcquireResult{Acquired: true, LockID: telemetryTestID}}
	d := WithTelemetry[telemetryFakeCaps](fake, ObserverFunc(func(Event) {}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = d.Acquire(ctx, telemetryTestKey, time.Second)
	}
}
