// Package otelsyncguard reports SyncGuard locks, leases, rate limiting and
// idempotency as OpenTelemetry metrics and traces.
//
// It is a [syncguard.OperationObserver]: give it to a Guard with
// [syncguard.WithObserver] and every acquisition (with its wait), release
// (with its hold time) and backend call becomes a span nested under the
// caller's span, and feeds the metrics listed in docs/observability.md:
//
//	obs, err := otelsyncguard.New(driver.Capabilities(),
//		otelsyncguard.WithMeterProvider(mp), otelsyncguard.WithTracerProvider(tp))
//	g := syncguard.New(driver, syncguard.WithObserver(obs))
//
// Metric attributes have low cardinality: the backend (db.system), the
// operation, the outcome and the error code, never a key or lock ID. Spans
// carry the keys and lock IDs as [driver.HashKey] digests
// (syncguard.key.hash, syncguard.lock_id.hash), and the raw values
// (syncguard.key, syncguard.lock_id) only when the Guard's observer was
// given [syncguard.IncludeRaw] or [syncguard.IncludeRawFunc].
//
// A rate limiter is observed when it is built on the Guard's decorated
// driver ([syncguard.Guard.Driver]); [syncguard.OncePerKey] and the httpmw
// middleware are observed through their Guard.
//
// The package is its own module, so the OpenTelemetry SDK never becomes a
// dependency of SyncGuard itself; it uses only the OpenTelemetry API.
package otelsyncguard

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/syncguard/syncguard/otelsyncguard"

// Metric names.
const (
	// MetricAcquisitions counts Guard acquisitions by outcome: acquired,
	// contended (TryAcquire found the key held), timed_out (retries or
	// the Timeout ran out) or error (with error.type).
	MetricAcquisitions = "syncguard.lock.acquisitions"
	// MetricAttempts counts single backend acquisition attempts by
	// outcome: acquired, contended or error.
	MetricAttempts = "syncguard.lock.attempts"
	// MetricWaitDuration is the time an acquisition took, retries and
	// waiting included, by outcome (seconds).
	MetricWaitDuration = "syncguard.lock.wait.duration"
	// MetricHoldDuration is the time from an acquisition to the release
	// of its lease (seconds).
	MetricHoldDuration = "syncguard.lock.hold.duration"
	// MetricHandoffs counts successful acquisition attempts made by a
	// queued waiter (drivers with hand-off: memory, Redis, PostgreSQL).
	MetricHandoffs = "syncguard.lock.handoffs"
	// MetricLeasesLost counts leases lost before their release.
	MetricLeasesLost = "syncguard.lease.lost"
	// MetricAutoExtendFailures counts heartbeat extends that failed, by
	// syncguard.result: fail (the lock was gone) or error (with
	// error.type; the heartbeat retries until the lease expires).
	MetricAutoExtendFailures = "syncguard.lease.auto_extend.failures"
	// MetricRateDecisions counts rate-limit requests by
	// syncguard.decision: allowed, refused or error.
	MetricRateDecisions = "syncguard.ratelimit.decisions"
	// MetricIdempotency counts OncePerKey.Do calls (and so idempotent
	// HTTP requests) by outcome: executed, replayed, conflict (in
	// progress elsewhere) or error.
	MetricIdempotency = "syncguard.idempotency.requests"
	// MetricBackendDuration is the latency of each backend call by
	// syncguard.operation (acquire, release, extend, isLocked, lookup,
	// rate) and syncguard.result (seconds).
	MetricBackendDuration = "syncguard.backend.duration"
)

// Span names.
const (
	SpanAcquire   = "syncguard.acquire"
	SpanRelease   = "syncguard.release"
	SpanOnce      = "syncguard.once"
	SpanLeaseLost = "syncguard.lease.lost"
	// SpanBackendPrefix starts the name of a backend call's span, followed
	// by the operation: syncguard.backend.acquire and so on.
	SpanBackendPrefix = "syncguard.backend."
)

// Attribute keys.
const (
	// AttrDBSystem is the backend: redis, postgresql, firestore, memory.
	AttrDBSystem = attribute.Key("db.system")
	// AttrErrorType is the driver.Code of an error, such as
	// ServiceUnavailable.
	AttrErrorType   = attribute.Key("error.type")
	AttrOutcome     = attribute.Key("syncguard.outcome")
	AttrOperation   = attribute.Key("syncguard.operation")
	AttrResult      = attribute.Key("syncguard.result")
	AttrDecision    = attribute.Key("syncguard.decision")
	AttrReason      = attribute.Key("syncguard.reason")
	AttrKeyHash     = attribute.Key("syncguard.key.hash")
	AttrLockIDHash  = attribute.Key("syncguard.lock_id.hash")
	AttrKey         = attribute.Key("syncguard.key")
	AttrLockID      = attribute.Key("syncguard.lock_id")
	AttrAttempts    = attribute.Key("syncguard.attempts")
	AttrHandoff     = attribute.Key("syncguard.handoff")
	AttrAutoExtend  = attribute.Key("syncguard.auto_extend")
	AttrHoldSeconds = attribute.Key("syncguard.hold.duration")
)

// Option configures [New].
type Option func(*config)

type config struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider sets the meter provider (default: the global one,
// otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithTracerProvider sets the tracer provider (default: the global one,
// otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// Observer turns SyncGuard events into metrics and spans. It implements
// [syncguard.OperationObserver] and is safe for concurrent use; one
// Observer serves any number of Guards of one backend.
type Observer struct {
	tracer trace.Tracer // nil: no tracing (a no-op provider)
	system attribute.KeyValue

	acquisitions, attempts, handoffs, lost, extendFailures, rate, idem metric.Int64Counter
	wait, hold, backend                                                metric.Float64Histogram

	// sets caches the metric attribute options by their low-cardinality
	// content (a setKey), so that a measurement allocates nothing: a map
	// read without locking, replaced (copied) under setsMu when a new
	// combination appears, which happens a bounded number of times.
	sets   atomic.Pointer[map[setKey]*measurementOpts]
	setsMu sync.Mutex
}

// New returns an Observer for a driver with capabilities caps; db.system
// is caps.Name(), with "postgres" reported as "postgresql". It fails only
// if an instrument cannot be created.
func New(caps driver.Capabilities, opts ...Option) (*Observer, error) {
	if caps == nil {
		return nil, &syncguard.LockError{Code: driver.InvalidArgument, Message: "otelsyncguard.New: capabilities must not be nil"}
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	o := &Observer{system: AttrDBSystem.String(dbSystem(caps.Name()))}
	if _, noop := cfg.tp.(tracenoop.TracerProvider); !noop {
		o.tracer = cfg.tp.Tracer(ScopeName)
	}
	m := cfg.mp.Meter(ScopeName)
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	histogram := func(name, desc string, bounds ...float64) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(bounds...))
		return h
	}
	o.acquisitions = counter(MetricAcquisitions, "{acquisition}", "Guard acquisitions by outcome.")
	o.attempts = counter(MetricAttempts, "{attempt}", "Backend acquisition attempts by outcome.")
	o.handoffs = counter(MetricHandoffs, "{acquisition}", "Successful acquisition attempts of queued waiters.")
	o.lost = counter(MetricLeasesLost, "{lease}", "Leases lost before their release.")
	o.extendFailures = counter(MetricAutoExtendFailures, "{extend}", "Failed heartbeat extends.")
	o.rate = counter(MetricRateDecisions, "{request}", "Rate-limit decisions.")
	o.idem = counter(MetricIdempotency, "{request}", "OncePerKey calls by outcome.")
	o.wait = histogram(MetricWaitDuration, "Time to acquire a lock, waiting included.",
		0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
	o.hold = histogram(MetricHoldDuration, "Time a lease was held.",
		0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600)
	o.backend = histogram(MetricBackendDuration, "Latency of backend calls.",
		0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// dbSystem maps a driver name to the OpenTelemetry db.system value.
func dbSystem(name string) string {
	if name == "postgres" {
		return "postgresql"
	}
	return name
}

// Span kinds as ready options (immutable).
var (
	spanKindClient   = trace.WithSpanKind(trace.SpanKindClient)
	spanKindInternal = trace.WithSpanKind(trace.SpanKindInternal)
)

// opSpan is the span of an operation in flight, put in the context as
// the current span (so that the operation's backend calls nest under it)
// with the operation and, for acquisitions, the number of backend
// attempts.
type opSpan struct {
	trace.Span
	op       syncguard.EventType
	attempts atomic.Int64
}

// opFrom returns the operation whose span is ctx's current span, or nil.
func opFrom(ctx context.Context) *opSpan {
	st, _ := trace.SpanFromContext(ctx).(*opSpan)
	return st
}

// StartOperation starts the span of an acquisition, a release or an
// OncePerKey call, as a child of ctx's span.
func (o *Observer) StartOperation(ctx context.Context, op syncguard.EventType) context.Context {
	var name string
	switch op {
	case syncguard.EventAcquisition:
		name = SpanAcquire
	case syncguard.EventLeaseRelease:
		name = SpanRelease
	case syncguard.EventOnce:
		name = SpanOnce
	default:
		return ctx
	}
	if o.tracer == nil {
		return ctx
	}
	_, span := o.tracer.Start(ctx, name, spanKindInternal)
	return trace.ContextWithSpan(ctx, &opSpan{Span: span, op: op})
}

// OnEvent records e without a context: its spans have no parent.
func (o *Observer) OnEvent(e syncguard.Event) { o.OnEventContext(context.Background(), e) }

// OnEventContext records e: it updates the metrics and ends the span of
// the operation e finishes, or records the span of the backend call e
// reports.
func (o *Observer) OnEventContext(ctx context.Context, e syncguard.Event) {
	st := opFrom(ctx)
	switch e.Type {
	case syncguard.EventAcquisition:
		outcome := acquisitionOutcome(e)
		o.acquisitions.Add(ctx, 1, o.opts(setKey{metric: 1, outcome: outcome, code: errCode(e, outcome)}).add...)
		o.wait.Record(ctx, e.Latency.Seconds(), o.opts(setKey{metric: 2, outcome: outcome}).record...)
		if st != nil && st.op == e.Type {
			o.endOp(st, e, AttrOutcome.String(outcome), AttrAttempts.Int64(st.attempts.Load()))
		}
	case syncguard.EventLeaseRelease:
		o.hold.Record(ctx, e.Held.Seconds(), o.opts(setKey{metric: 3}).record...)
		if st != nil && st.op == e.Type {
			if st.IsRecording() {
				st.SetAttributes(AttrOperation.String(string(syncguard.EventRelease)))
			}
			o.endOp(st, e, AttrResult.String(e.Result), AttrHoldSeconds.Float64(e.Held.Seconds()))
		}
	case syncguard.EventOnce:
		outcome := onceOutcome(e)
		o.idem.Add(ctx, 1, o.opts(setKey{metric: 4, outcome: outcome, code: errCode(e, outcome)}).add...)
		if st != nil && st.op == e.Type {
			o.endOp(st, e, AttrOutcome.String(outcome), attribute.KeyValue{})
		}
	case syncguard.EventLost:
		o.lost.Add(ctx, 1, o.opts(setKey{metric: 5}).add...)
		if o.tracer == nil {
			return
		}
		_, span := o.tracer.Start(ctx, SpanLeaseLost, spanKindInternal)
		if span.IsRecording() {
			var buf [8]attribute.KeyValue
			span.SetAttributes(o.identity(append(buf[:0], o.system, AttrReason.String(e.Reason)), e)...)
			span.SetStatus(codes.Error, "lease lost")
		}
		span.End()
	default:
		o.backendCall(ctx, st, e)
	}
}

// backendCall records the metrics and the span of one driver call.
func (o *Observer) backendCall(ctx context.Context, st *opSpan, e syncguard.Event) {
	name := backendSpanName(e.Type)
	if name == "" {
		return
	}
	switch e.Type {
	case syncguard.EventAcquire:
		outcome := attemptOutcome(e)
		o.attempts.Add(ctx, 1, o.opts(setKey{metric: 6, outcome: outcome, code: errCode(e, outcome)}).add...)
		if e.Handoff && e.Result == syncguard.ResultOK {
			o.handoffs.Add(ctx, 1, o.opts(setKey{metric: 7}).add...)
		}
		if st != nil && st.op == syncguard.EventAcquisition {
			st.attempts.Add(1)
		}
	case syncguard.EventExtend:
		if e.AutoExtend && e.Result != syncguard.ResultOK {
			o.extendFailures.Add(ctx, 1, o.opts(setKey{metric: 8, outcome: e.Result, code: e.Code}).add...)
		}
	case syncguard.EventRate:
		decision := "allowed"
		switch e.Result {
		case syncguard.ResultFail:
			decision = "refused"
		case syncguard.ResultError:
			decision = "error"
		}
		o.rate.Add(ctx, 1, o.opts(setKey{metric: 9, outcome: decision, code: e.Code}).add...)
	}
	o.backend.Record(ctx, e.Latency.Seconds(), o.opts(setKey{metric: 10, op: e.Type, outcome: e.Result, code: e.Code}).record...)

	// A call inside an operation whose span is not sampled is not traced
	// either: samplers decide for a whole trace (ParentBased, the
	// default, and TraceIDRatioBased alike).
	if o.tracer == nil || (st != nil && !st.IsRecording()) {
		return
	}
	// A lease release is one backend call: its span (syncguard.release)
	// is that call's span too, rather than the parent of a second one.
	if st != nil && st.op == syncguard.EventLeaseRelease && e.Type == syncguard.EventRelease {
		return
	}
	end := time.Now()
	_, span := o.tracer.Start(ctx, name, spanKindClient, trace.WithTimestamp(end.Add(-e.Latency)))
	if span.IsRecording() {
		var buf [12]attribute.KeyValue
		a := append(buf[:0], o.system, AttrOperation.String(string(e.Type)), AttrResult.String(e.Result))
		if e.Handoff {
			a = append(a, AttrHandoff.Bool(true))
		}
		if e.AutoExtend {
			a = append(a, AttrAutoExtend.Bool(true))
		}
		span.SetAttributes(o.identity(a, e)...)
		if e.Result == syncguard.ResultError {
			span.SetStatus(codes.Error, e.Code.String())
		}
	}
	span.End(trace.WithTimestamp(end))
}

// endOp sets the final attributes (a2 only if valid) and status of an
// operation's span and ends it.
func (o *Observer) endOp(st *opSpan, e syncguard.Event, a1, a2 attribute.KeyValue) {
	if st.IsRecording() {
		var buf [12]attribute.KeyValue
		a := append(buf[:0], o.system, a1)
		if a2.Valid() {
			a = append(a, a2)
		}
		st.SetAttributes(o.identity(a, e)...)
		if e.Result == syncguard.ResultError {
			st.SetStatus(codes.Error, e.Code.String())
		}
	}
	st.End()
}

// identity appends to a the attributes every span of e has: its reason
// and error type, the key and lock ID hashes, and the raw key and lock ID
// when the event carries them (raw output switched on).
func (o *Observer) identity(a []attribute.KeyValue, e syncguard.Event) []attribute.KeyValue {
	if e.Reason != "" {
		a = append(a, AttrReason.String(e.Reason))
	}
	if e.Result == syncguard.ResultError {
		a = append(a, AttrErrorType.String(e.Code.String()))
	}
	if e.KeyHash != "" {
		a = append(a, AttrKeyHash.String(e.KeyHash))
	}
	if e.LockIDHash != "" {
		a = append(a, AttrLockIDHash.String(e.LockIDHash))
	}
	if e.Key != "" {
		a = append(a, AttrKey.String(e.Key))
	}
	if e.LockID != "" {
		a = append(a, AttrLockID.String(e.LockID))
	}
	return a
}

func backendSpanName(t syncguard.EventType) string {
	switch t {
	case syncguard.EventAcquire:
		return SpanBackendPrefix + "acquire"
	case syncguard.EventRelease:
		return SpanBackendPrefix + "release"
	case syncguard.EventExtend:
		return SpanBackendPrefix + "extend"
	case syncguard.EventLookup:
		return SpanBackendPrefix + "lookup"
	case syncguard.EventRate:
		return SpanBackendPrefix + "rate"
	}
	return ""
}

func acquisitionOutcome(e syncguard.Event) string {
	switch {
	case e.Result == syncguard.ResultOK:
		return "acquired"
	case e.Result == syncguard.ResultFail:
		return "contended"
	case e.Code == driver.AcquisitionTimeout:
		return "timed_out"
	}
	return "error"
}

func attemptOutcome(e syncguard.Event) string {
	switch e.Result {
	case syncguard.ResultOK:
		return "acquired"
	case syncguard.ResultFail:
		return "contended"
	}
	return "error"
}

func onceOutcome(e syncguard.Event) string {
	switch {
	case e.Result == syncguard.ResultOK && e.Reason == "replayed":
		return "replayed"
	case e.Result == syncguard.ResultOK:
		return "executed"
	case e.Result == syncguard.ResultFail:
		return "conflict"
	}
	return "error"
}

// errCode is e's code when outcome is "error", else 0.
func errCode(e syncguard.Event, outcome string) driver.Code {
	if outcome == "error" {
		return e.Code
	}
	return 0
}

// setKey identifies the attribute set of one measurement; metric tells
// which attributes it has.
type setKey struct {
	metric  int
	op      syncguard.EventType
	outcome string
	code    driver.Code
}

// measurementOpts holds the options of a measurement with one attribute
// set, ready to pass without allocating.
type measurementOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

// opts returns the cached measurement options holding k's attributes.
func (o *Observer) opts(k setKey) *measurementOpts {
	if m := o.sets.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	o.setsMu.Lock()
	defer o.setsMu.Unlock()
	old := o.sets.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	attrs := []attribute.KeyValue{o.system}
	switch k.metric {
	case 1, 2, 4, 6: // acquisitions, wait, idempotency, attempts
		attrs = append(attrs, AttrOutcome.String(k.outcome))
	case 8: // auto-extend failures
		attrs = append(attrs, AttrResult.String(k.outcome))
	case 9: // rate decisions
		attrs = append(attrs, AttrDecision.String(k.outcome))
	case 10: // backend duration
		attrs = append(attrs, AttrOperation.String(string(k.op)), AttrResult.String(k.outcome))
	}
	if k.code != 0 {
		attrs = append(attrs, AttrErrorType.String(k.code.String()))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attrs...))
	v := &measurementOpts{add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
	m := make(map[setKey]*measurementOpts, 1+lenOf(old))
	if old != nil {
		for key, val := range *old {
			m[key] = val
		}
	}
	m[k] = v
	o.sets.Store(&m)
	return v
}

func lenOf(m *map[setKey]*measurementOpts) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
