package syncguard

import (
	"context"
	"time"
)

// EventType names the operation an [Event] reports.
type EventType string

// Event types. The telemetry decorator ([WithTelemetry]) emits all of them
// except EventLost, which reports a lease that was lost before its holder
// released it.
const (
	EventAcquire  EventType = "acquire"
	EventRelease  EventType = "release"
	EventExtend   EventType = "extend"
	EventIsLocked EventType = "isLocked"
	EventLookup   EventType = "lookup"
	EventLost     EventType = "lost"
)

// Event results.
const (
	// ResultOK: the call succeeded (acquired, released, extended, locked,
	// found).
	ResultOK = "ok"
	// ResultFail: the call completed without error but did not succeed
	// (contended, not released, not extended, not locked, not found).
	ResultFail = "fail"
	// ResultError: the call returned an error; Event.Code classifies it.
	ResultError = "error"
)

// Event is one observed driver call (contract §8) plus its latency and, for
// failed calls, the error code. Lease machinery also reports lost leases as
// events of type [EventLost].
//
// Keys and lock IDs appear only as [HashKey] digests unless raw output is
// switched on ([IncludeRaw], [IncludeRawFunc]). Hashes are computed only for
// valid input: an invalid key or lock ID (which the driver rejects with
// InvalidArgument) leaves its hash and raw field empty.
type Event struct {
	// Type is the operation.
	Type EventType
	// Result is ResultOK, ResultFail or ResultError.
	Result string
	// KeyHash is HashKey of the normalised key (acquire, isLocked, lookup
	// by key).
	KeyHash string
	// LockIDHash is HashKey of the lock ID (release, extend, lookup by ID).
	LockIDHash string
	// Reason explains a failure: "locked" for a contended acquire, the
	// driver's Detail ("expired", "not-found") for release and extend when
	// it gave one, and why a lease was lost for EventLost. Empty otherwise.
	Reason string
	// Key is the raw normalised key, set only when raw output is on.
	Key string
	// LockID is the raw lock ID, set only when raw output is on (for
	// acquire: only when the lock was acquired).
	LockID string
	// Code is the error's code when Result is ResultError ([CodeOf], or
	// Internal for an error that is not a *LockError); 0 otherwise.
	Code Code
	// Latency is the time spent in the driver call (for operation events:
	// in the operation, see [EventAcquisition]).
	Latency time.Duration
	// Handoff marks an acquire event of an attempt made by a queued waiter
	// of a [HandoffWatcher] (a successful one claimed a hand-off or found
	// the key free). Set only for an [OperationObserver].
	Handoff bool
	// AutoExtend marks an extend event of a lease's heartbeat (see
	// [AutoExtend]). Set only for an [OperationObserver].
	AutoExtend bool
	// Held is, for [EventLeaseRelease], the time from the acquisition of
	// the lease to the start of its release.
	Held time.Duration
}

// Observer receives events. OnEvent is called synchronously on the
// goroutine that made the driver call, so it should be fast; it may be
// called concurrently and must be safe for concurrent use. A panic in
// OnEvent is recovered by the caller and never changes a result or error.
type Observer interface {
	OnEvent(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// OnEvent calls f(e).
func (f ObserverFunc) OnEvent(e Event) { f(e) }

// MultiObserver returns an Observer that passes every event to each of obs
// in order, skipping nil entries. A panic in one observer is recovered and
// does not keep the event from the others.
func MultiObserver(obs ...Observer) Observer {
	list := make([]Observer, 0, len(obs))
	for _, o := range obs {
		if !nilObserver(o) {
			list = append(list, o)
		}
	}
	return multiObserver(list)
}

type multiObserver []Observer

func (m multiObserver) OnEvent(e Event) {
	for _, o := range m {
		notify(o, e)
	}
}

// notify calls o.OnEvent(e), recovering any panic.
func notify(o Observer, e Event) {
	defer func() { _ = recover() }()
	o.OnEvent(e)
}

func nilObserver(o Observer) bool {
	if o == nil {
		return true
	}
	f, ok := o.(ObserverFunc)
	return ok && f == nil
}

// TelemetryOption configures [WithTelemetry].
type TelemetryOption func(*telemetryConfig)

type telemetryConfig struct {
	rawAll  bool
	rawFunc func(Event) bool
}

// IncludeRaw switches raw output on or off for every event: with on, events
// carry the raw normalised key and lock ID besides their hashes. The default
// is off. Raw keys and lock IDs may be sensitive; a lock ID lets its reader
// release the lock.
func IncludeRaw(on bool) TelemetryOption {
	return func(c *telemetryConfig) { c.rawAll, c.rawFunc = on, nil }
}

// IncludeRawFunc decides raw output per event: f sees the complete sanitized
// event (before any raw field is added) and returns whether to add the raw
// key and lock ID. f is called once per event. If f panics, the event is
// redacted (no raw fields) and the call proceeds normally. A nil f means
// raw output off.
func IncludeRawFunc(f func(Event) bool) TelemetryOption {
	return func(c *telemetryConfig) { c.rawAll, c.rawFunc = false, f }
}

// WithTelemetry returns d decorated so that o observes every lock call
// (contract §8, with the project's error events).
//
// After each Acquire, Release, Extend, IsLocked, LookupByKey and LookupByID
// the decorator emits exactly one [Event] (and after each AllowN one
// [EventRate] when o is an [OperationObserver]):
//
//   - acquire: KeyHash; ok if acquired, else fail with Reason "locked";
//     raw Key and, if acquired, LockID.
//   - release, extend: LockIDHash; ok or fail, with Reason = the result's
//     Detail when the driver gave one; raw LockID.
//   - isLocked: KeyHash; ok iff locked, never a reason; raw Key.
//   - lookup: KeyHash (by key) or LockIDHash (by ID); ok iff found; raw Key
//     or LockID by mode.
//
// A call that returns an error emits Result "error" with its Code. Every
// event carries the latency of the driver call. Raw fields are added only as
// configured by [IncludeRaw] or [IncludeRawFunc] (default: never).
//
// The decorator never changes a result, an error or the capabilities, and
// it recovers panics of o. The record methods and ResetRate pass through
// without events. The returned driver implements [ReleaseWatcher],
// [HandoffWatcher] and [RawLookup] by delegating to d; use
// [AsReleaseWatcher], [AsHandoffWatcher] and [AsRawLookup] to learn
// whether d actually supports them (when it does not, the methods return an
// Internal error). Its Unwrap method returns d.
//
// If o is nil, WithTelemetry returns d unchanged. d must not be nil.
func WithTelemetry[C Capabilities](d Driver[C], o Observer, opts ...TelemetryOption) Driver[C] {
	if d == nil {
		panic("syncguard: WithTelemetry: nil driver")
	}
	if nilObserver(o) {
		return d
	}
	t := &telemetryDriver[C]{inner: d, obs: o}
	_, t.ops = o.(OperationObserver)
	for _, opt := range opts {
		if opt != nil {
			opt(&t.cfg)
		}
	}
	return t
}

// telemetryDriver is the decorator built by WithTelemetry. It holds no
// mutable state and is safe for concurrent use.
type telemetryDriver[C Capabilities] struct {
	inner Driver[C]
	obs   Observer
	cfg   telemetryConfig
	ops   bool // obs is an OperationObserver
}

// Unwrap returns the decorated driver.
func (t *telemetryDriver[C]) Unwrap() Backend { return t.inner }

// Capabilities returns the decorated driver's capabilities unchanged.
func (t *telemetryDriver[C]) Capabilities() C { return t.inner.Capabilities() }

// Acquire calls the decorated driver and emits an acquire event.
func (t *telemetryDriver[C]) Acquire(ctx context.Context, key string, ttl time.Duration) (AcquireResult, error) {
	start := time.Now()
	res, err := t.inner.Acquire(ctx, key, ttl)
	t.emitAcquire(ctx, key, start, res, err, false)
	return res, err
}

// emitAcquire emits the event of an acquisition attempt of key that
// started at start.
// handoff marks an attempt of a queued waiter.
func (t *telemetryDriver[C]) emitAcquire(ctx context.Context, key string, start time.Time, res AcquireResult, err error, handoff bool) {
	ev := Event{Type: EventAcquire, Latency: time.Since(start), Handoff: handoff}
	nk, valid := keyForEvent(&ev, key)
	switch {
	case err != nil:
		setError(&ev, err)
	case res.Acquired:
		ev.Result = ResultOK
	default:
		ev.Result, ev.Reason = ResultFail, ReasonLocked
	}
	if valid && t.wantRaw(ev) {
		ev.Key = nk
		if err == nil && res.Acquired {
			ev.LockID = res.LockID
		}
	}
	t.emit(ctx, ev)
}

// Release calls the decorated driver and emits a release event.
func (t *telemetryDriver[C]) Release(ctx context.Context, lockID string) (ReleaseResult, error) {
	start := time.Now()
	res, err := t.inner.Release(ctx, lockID)
	t.emitOutcome(ctx, EventRelease, lockID, time.Since(start), res.OK, res.Detail, err)
	return res, err
}

// Extend calls the decorated driver and emits an extend event.
func (t *telemetryDriver[C]) Extend(ctx context.Context, lockID string, ttl time.Duration) (ExtendResult, error) {
	start := time.Now()
	res, err := t.inner.Extend(ctx, lockID, ttl)
	t.emitOutcome(ctx, EventExtend, lockID, time.Since(start), res.OK, res.Detail, err)
	return res, err
}

// IsLocked calls the decorated driver and emits an isLocked event.
func (t *telemetryDriver[C]) IsLocked(ctx context.Context, key string) (bool, error) {
	start := time.Now()
	locked, err := t.inner.IsLocked(ctx, key)
	t.emitKey(ctx, EventIsLocked, key, time.Since(start), locked, err)
	return locked, err
}

// LookupByKey calls the decorated driver and emits a lookup event.
func (t *telemetryDriver[C]) LookupByKey(ctx context.Context, key string) (*LockInfo, error) {
	start := time.Now()
	info, err := t.inner.LookupByKey(ctx, key)
	t.emitKey(ctx, EventLookup, key, time.Since(start), info != nil, err)
	return info, err
}

// LookupByID calls the decorated driver and emits a lookup event.
func (t *telemetryDriver[C]) LookupByID(ctx context.Context, lockID string) (*LockInfo, error) {
	start := time.Now()
	info, err := t.inner.LookupByID(ctx, lockID)
	t.emitOutcome(ctx, EventLookup, lockID, time.Since(start), info != nil, "", err)
	return info, err
}

// LookupRawByKey delegates to the decorated driver's [RawLookup] and emits
// a lookup event; without driver support it returns an Internal error.
func (t *telemetryDriver[C]) LookupRawByKey(ctx context.Context, key string) (*RawLockInfo, error) {
	r, ok := AsRawLookup(t.inner)
	if !ok {
		return nil, errNotSupported()
	}
	start := time.Now()
	info, err := r.LookupRawByKey(ctx, key)
	t.emitKey(ctx, EventLookup, key, time.Since(start), info != nil, err)
	return info, err
}

// LookupRawByID delegates to the decorated driver's [RawLookup] and emits a
// lookup event; without driver support it returns an Internal error.
func (t *telemetryDriver[C]) LookupRawByID(ctx context.Context, lockID string) (*RawLockInfo, error) {
	r, ok := AsRawLookup(t.inner)
	if !ok {
		return nil, errNotSupported()
	}
	start := time.Now()
	info, err := r.LookupRawByID(ctx, lockID)
	t.emitOutcome(ctx, EventLookup, lockID, time.Since(start), info != nil, "", err)
	return info, err
}

// WatchHandoff delegates to the decorated driver's [HandoffWatcher]; the
// waiter's attempts emit acquire events like Acquire. Without driver
// support it returns an Internal error.
func (t *telemetryDriver[C]) WatchHandoff(ctx context.Context, key string) (*Handoff, error) {
	w, ok := AsHandoffWatcher(t.inner)
	if !ok {
		return nil, errNotSupported()
	}
	h, err := w.WatchHandoff(ctx, key)
	if err != nil {
		return h, err
	}
	return t.wrapHandoff(key, h), nil
}

// WarmHandoff delegates to the decorated driver's [HandoffWatcher] like
// WatchHandoff; without driver support it returns nil.
func (t *telemetryDriver[C]) WarmHandoff(key string) *Handoff {
	w, ok := AsHandoffWatcher(t.inner)
	if !ok {
		return nil
	}
	return t.wrapHandoff(key, w.WarmHandoff(key))
}

// wrapHandoff makes h's attempts emit acquire events.
func (t *telemetryDriver[C]) wrapHandoff(key string, h *Handoff) *Handoff {
	if h == nil {
		return nil
	}
	wrapped := *h
	wrapped.Acquire = func(ctx context.Context, ttl time.Duration) (AcquireResult, error) {
		start := time.Now()
		res, err := h.Acquire(ctx, ttl)
		t.emitAcquire(ctx, key, start, res, err, true)
		return res, err
	}
	return &wrapped
}

// WatchRelease delegates to the decorated driver's [ReleaseWatcher]
// without events; without driver support it returns an Internal error.
func (t *telemetryDriver[C]) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	w, ok := AsReleaseWatcher(t.inner)
	if !ok {
		return nil, nil, errNotSupported()
	}
	return w.WatchRelease(ctx, key)
}

// PutRecord passes through without an event.
func (t *telemetryDriver[C]) PutRecord(ctx context.Context, name string, fence Fence, value []byte, ttl time.Duration) (PutResult, error) {
	return t.inner.PutRecord(ctx, name, fence, value, ttl)
}

// GetRecord passes through without an event.
func (t *telemetryDriver[C]) GetRecord(ctx context.Context, name string) (*Record, error) {
	return t.inner.GetRecord(ctx, name)
}

// DeleteRecord passes through without an event.
func (t *telemetryDriver[C]) DeleteRecord(ctx context.Context, name string, fence Fence) (bool, error) {
	return t.inner.DeleteRecord(ctx, name, fence)
}

// AllowN calls the decorated driver and emits a rate event to an
// [OperationObserver]; for other observers it passes through.
func (t *telemetryDriver[C]) AllowN(ctx context.Context, key string, limit RateLimit, n int) (RateResult, error) {
	if !t.ops {
		return t.inner.AllowN(ctx, key, limit, n)
	}
	start := time.Now()
	res, err := t.inner.AllowN(ctx, key, limit, n)
	ev := Event{Type: EventRate, Latency: time.Since(start)}
	nk, valid := keyForEvent(&ev, key)
	setResult(&ev, n <= 0 || res.Allowed > 0, ReasonLimited, err)
	if valid && t.wantRaw(ev) {
		ev.Key = nk
	}
	t.emit(ctx, ev)
	return res, err
}

// ResetRate passes through without an event.
func (t *telemetryDriver[C]) ResetRate(ctx context.Context, key string) error {
	return t.inner.ResetRate(ctx, key)
}

// emitKey emits an event for a key-addressed call whose success is ok.
func (t *telemetryDriver[C]) emitKey(ctx context.Context, typ EventType, key string, lat time.Duration, ok bool, err error) {
	ev := Event{Type: typ, Latency: lat}
	nk, valid := keyForEvent(&ev, key)
	setResult(&ev, ok, "", err)
	if valid && t.wantRaw(ev) {
		ev.Key = nk
	}
	t.emit(ctx, ev)
}

// emitOutcome emits an event for a lockID-addressed call whose success is
// ok; detail becomes the reason of a failure.
func (t *telemetryDriver[C]) emitOutcome(ctx context.Context, typ EventType, lockID string, lat time.Duration, ok bool, detail string, err error) {
	ev := Event{Type: typ, Latency: lat, AutoExtend: typ == EventExtend && t.ops && isAutoExtend(ctx)}
	valid := ValidLockID(lockID)
	if valid {
		ev.LockIDHash = HashKey(lockID)
	}
	setResult(&ev, ok, detail, err)
	if valid && t.wantRaw(ev) {
		ev.LockID = lockID
	}
	t.emit(ctx, ev)
}

func (t *telemetryDriver[C]) wantRaw(ev Event) bool { return t.cfg.wantRaw(ev) }

// wantRaw reports whether raw fields are to be added to ev. A panicking
// predicate means no.
func (c *telemetryConfig) wantRaw(ev Event) (raw bool) {
	if c.rawAll {
		return true
	}
	if c.rawFunc == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			raw = false
		}
	}()
	return c.rawFunc(ev)
}

func (t *telemetryDriver[C]) emit(ctx context.Context, ev Event) { notifyCtx(t.obs, ctx, ev) }

// keyForEvent sets ev.KeyHash from key if key is valid and returns the
// normalised key. Invalid keys (possibly huge) are neither hashed nor kept.
func keyForEvent(ev *Event, key string) (string, bool) {
	nk, err := NormalizeKey(key)
	if err != nil {
		return "", false
	}
	ev.KeyHash = HashKey(nk)
	return nk, true
}

func setResult(ev *Event, ok bool, reason string, err error) {
	switch {
	case err != nil:
		setError(ev, err)
	case ok:
		ev.Result = ResultOK
	default:
		ev.Result, ev.Reason = ResultFail, reason
	}
}

func setError(ev *Event, err error) {
	ev.Result, ev.Code = ResultError, CodeOf(err)
	if ev.Code == 0 {
		ev.Code = Internal
	}
}

const msgNotSupported = "not supported by driver"

func errNotSupported() error {
	return &LockError{Code: Internal, Message: msgNotSupported}
}
