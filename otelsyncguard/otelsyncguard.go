// Package otelsyncguard reports SyncGuard locks, leases, rate limiting and
// idempotency as OpenTelemetry metrics and traces.
//
// It is a [syncguard.OperationObserver]: give it to a Guard with
// [syncguard.WithObserver] and every acquisition (with its wait), release
// (with its hold time) and backend call becomes a span nested under the
// caller's span, and feeds the metrics listed in docs/observability.md:
//
//	obs, err := otelsyncguard.New(d.Capabilities(),
//		otelsyncguard.WithMeterProvider(mp), otelsyncguard.WithTracerProvider(tp))
//	g := syncguard.NewFenced(d, syncguard.WithObserver(obs))
//
// Metric attributes have low cardinality: the backend (db.system), the
// operation, the outcome and the error code, never a key or lock ID. Spans
// carry the keys and lock IDs as [driver.HashKey] digests
// (syncguard.key.hash, syncguard.lock_id.hash), and the raw values
// (syncguard.key, syncguard.lock_id) only for the events the Guard's
// [syncguard.WithRawEvents] predicate selects.
//
// Spans are made only inside a caller's sampled trace unless
// [WithRootSpans] is on, and backend calls only under a recording span, so
// that an unsampled operation costs its metrics and little more (see
// docs/observability.md for the measured overhead).
//
// A rate limiter is observed when it is built with
// [syncguard.WithObserver]; [syncguard.OncePerKey] and the httpmw
// middleware are observed through their Guard.
//
// Metrics go through the meter provider's instruments, or, with
// [WithProducer], are aggregated by the Observer and read by a reader it
// is registered with: the fast choice at high lock rates.
//
// The package is its own module, so the OpenTelemetry SDK never becomes a
// dependency of SyncGuard itself; it uses the OpenTelemetry API, and the
// metric SDK's data types for [WithProducer].
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
	// syncguard.operation (acquire, release, extend, lookup, rate,
	// record) and syncguard.result (seconds).
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
	mp        metric.MeterProvider
	tp        trace.TracerProvider
	rootSpans bool
	producer  bool
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

// WithRootSpans lets an acquisition, a release, an OncePerKey call or a
// lost lease whose context carries no span start a trace of its own
// (subject to the tracer provider's sampler). The default is off:
// SyncGuard then makes spans only inside a caller's sampled trace, so that
// a background job's locks or a lease's heartbeat never start traces
// nobody asked for. Backend
// calls never start a trace: they make spans only under a recording span
// (their operation's or the caller's).
func WithRootSpans(on bool) Option {
	return func(c *config) { c.rootSpans = on }
}

// WithProducer makes the Observer aggregate its metrics itself and hand
// them over as an [sdkmetric.Producer]: register it with the reader that
// exports them, with sdkmetric.WithProducer(obs) or the Prometheus
// exporter's WithProducer(obs). A measurement then costs a few atomic
// additions instead of the SDK's synchronous instruments (about a quarter
// of a microsecond each), which matters at tens of thousands of locks per
// second (docs/observability.md, "Overhead"). The meter provider is not
// used; the metrics, their attributes and buckets are the same, but
// always cumulative (whatever the reader's temporality) and without min,
// max or exemplars. Register one such Observer per backend with a reader:
// two would report the same series twice. An Observer made without
// WithProducer produces nothing.
func WithProducer() Option {
	return func(c *config) { c.producer = true }
}

// Observer turns SyncGuard events into metrics and spans. It implements
// [syncguard.OperationObserver] and is safe for concurrent use; one
// Observer serves any number of Guards of one backend.
type Observer struct {
	tracer    trace.Tracer // nil: no tracing (a no-op provider)
	rootSpans bool
	system    attribute.KeyValue
	producer  bool      // metrics aggregated here (WithProducer)
	start     time.Time // the start of the producer's cumulative series

	// The counters are observable: a measurement adds to an atomic
	// series of this Observer (measurementOpts.n), and the SDK reads the
	// series when it collects, which costs a measurement a few
	// nanoseconds instead of a synchronous counter's attribute handling.
	counters [nSeries]metric.Int64ObservableCounter // by setKey.metric, nil where none
	hists    [nSeries]metric.Float64Histogram       // by setKey.metric, nil where none (and with WithProducer)

	// fast holds the measurement options of every attribute set without
	// an error type, built by New and indexed without hashing.
	fast fastSets
	// sets caches the options of the sets with an error type by their
	// content (a setKey): a map read without locking, replaced (copied)
	// under setsMu when a new combination appears, which happens a
	// bounded number of times.
	sets   atomic.Pointer[map[setKey]*measurementOpts]
	setsMu sync.Mutex
	// series lists every counter series, read by the collection callback,
	// and with WithProducer every histogram series; guarded by setsMu.
	series []*measurementOpts

	reg metric.Registration // the counters' callback; nil with WithProducer
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
	o := &Observer{system: AttrDBSystem.String(dbSystem(caps.Name())), rootSpans: cfg.rootSpans,
		producer: cfg.producer, start: time.Now()}
	if _, noop := cfg.tp.(tracenoop.TracerProvider); !noop {
		o.tracer = cfg.tp.Tracer(ScopeName)
	}
	if o.producer {
		o.buildFast()
		return o, nil
	}
	m := cfg.mp.Meter(ScopeName)
	var err error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		if err != nil {
			return nil
		}
		var c metric.Int64ObservableCounter
		c, err = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		return c
	}
	hist := func(name, unit, desc string, bounds []float64) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var h metric.Float64Histogram
		h, err = m.Float64Histogram(name, metric.WithUnit(unit), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(bounds...))
		return h
	}
	var observables []metric.Observable
	for m, def := range seriesDefs {
		if def.counter != "" {
			o.counters[m] = counter(def.counter, metricUnit[def.counter], metricDesc[def.counter])
			observables = append(observables, o.counters[m])
		}
		if def.histogram != "" {
			o.hists[m] = hist(def.histogram, metricUnit[def.histogram], metricDesc[def.histogram], def.bounds)
		}
	}
	if err != nil {
		return nil, err
	}
	o.buildFast()
	// The registration lives until Close or the end of the meter
	// provider.
	if o.reg, err = m.RegisterCallback(o.collect, observables...); err != nil {
		return nil, err
	}
	return o, nil
}

// Close unregisters the Observer's counters from the meter provider, so
// that an Observer dropped before its provider ends can be freed; its
// counters are no longer reported (histograms already recorded stay with
// the provider). Use it when making Observers for Guards that come and
// go; it is idempotent, and does nothing with [WithProducer], whose
// metrics end with the reader's.
func (o *Observer) Close() error {
	o.setsMu.Lock()
	reg := o.reg
	o.reg = nil
	o.setsMu.Unlock()
	if reg == nil {
		return nil
	}
	return reg.Unregister()
}

// collect reports the counter series that have counted anything.
func (o *Observer) collect(_ context.Context, obs metric.Observer) error {
	o.setsMu.Lock()
	series := o.series
	o.setsMu.Unlock()
	for _, s := range series {
		if n := s.n.Load(); n > 0 && s.counter != nil {
			obs.ObserveInt64(s.counter, n, s.observe...)
		}
	}
	return nil
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

// opSpan is the span of a recorded operation in flight, put in the
// context as the current span (so that the operation's backend calls nest
// under it) with the operation and, for acquisitions, the number of
// backend attempts. Operations whose span is not recorded have none.
type opSpan struct {
	trace.Span
	op       syncguard.EventType
	attempts atomic.Int64
	ended    atomic.Bool
}

// IsRecording reports whether the span is still recorded: it was when it
// started (an opSpan exists only then) and has not ended. It spares the
// SDK span's lock on every backend call.
func (s *opSpan) IsRecording() bool { return !s.ended.Load() }

// opFrom returns the operation whose span is ctx's current span, or nil.
func opFrom(ctx context.Context) *opSpan {
	st, _ := trace.SpanFromContext(ctx).(*opSpan)
	return st
}

// traceable reports whether a span started under ctx may be recorded: ctx's
// span is recording, or is a sampled span context from elsewhere (a remote
// parent). valid reports whether ctx carries a span context at all.
func traceable(ctx context.Context) (ok, valid bool) {
	parent := trace.SpanFromContext(ctx)
	if st, isOp := parent.(*opSpan); isOp {
		return st.IsRecording(), true
	}
	sc := parent.SpanContext()
	if !sc.IsValid() {
		return false, false
	}
	return sc.IsSampled() || parent.IsRecording(), true
}

// spanAllowed reports whether an operation span (or a lost lease's span)
// is to be started under ctx: inside a sampled or recording trace, or as a
// root when ctx has no span and root spans are on. A span under an
// unsampled parent is not started at all: with the ParentBased samplers
// (the SDK's default) it would not be recorded, and starting it costs IDs,
// a sampler call and allocations.
func (o *Observer) spanAllowed(ctx context.Context) bool {
	if o.tracer == nil {
		return false
	}
	ok, valid := traceable(ctx)
	if valid {
		return ok
	}
	return o.rootSpans
}

// StartOperation starts the span of an acquisition, a release or an
// OncePerKey call, as a child of ctx's span (see [WithRootSpans] for a ctx
// without one).
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
		return nil
	}
	if !o.spanAllowed(ctx) {
		return nil
	}
	sctx, span := o.tracer.Start(ctx, name, spanKindInternal)
	if !span.IsRecording() {
		// The sampler dropped a new trace: keep its (unsampled) span
		// context so that nested operations and backend calls follow
		// the decision. A non-recording span need not be ended.
		return sctx
	}
	return trace.ContextWithSpan(ctx, &opSpan{Span: span, op: op})
}

// NeedsDigests reports whether the events of ctx's call may become span
// attributes: only then are their keys and lock IDs hashed (metrics never
// carry them).
func (o *Observer) NeedsDigests(ctx context.Context) bool { return o.spanAllowed(ctx) }

// OnEvent records e without a context: its spans have no parent.
func (o *Observer) OnEvent(e syncguard.Event) { o.OnEventContext(context.Background(), e) }

// OnEventContext records e: it updates the metrics and ends the span of
// the operation e finishes, or records the span of the backend call e
// reports.
func (o *Observer) OnEventContext(ctx context.Context, e syncguard.Event) {
	switch e.Type {
	case syncguard.EventAcquisition:
		i := acquisitionOutcome(e)
		opts := o.fast.acquisitions[i]
		opts = o.pick(opts, setKey{metric: mAcquisitions, outcome: acquisitionOutcomes[i]}, errCode(e, i == acqError))
		opts.n.Add(1)
		o.record(ctx, opts, e.Latency)
		if st := opFrom(ctx); st != nil && st.op == e.Type {
			o.endOp(st, e, AttrOutcome.String(acquisitionOutcomes[i]), AttrAttempts.Int64(st.attempts.Load()))
		}
	case syncguard.EventLeaseRelease:
		o.record(ctx, o.fast.hold, e.Held)
		if st := opFrom(ctx); st != nil && st.op == e.Type {
			o.endOp(st, e, AttrResult.String(e.Result), AttrHoldSeconds.Float64(e.Held.Seconds()),
				AttrOperation.String(string(syncguard.EventRelease)))
		}
	case syncguard.EventOnce:
		i := onceOutcome(e)
		o.pick(o.fast.idem[i], setKey{metric: mIdempotency, outcome: onceOutcomes[i]}, errCode(e, i == onceError)).n.Add(1)
		if st := opFrom(ctx); st != nil && st.op == e.Type {
			o.endOp(st, e, AttrOutcome.String(onceOutcomes[i]))
		}
	case syncguard.EventLost:
		o.fast.lost.n.Add(1)
		if !o.spanAllowed(ctx) {
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
		o.backendCall(ctx, e)
	}
}

// backendCall records the metrics and the span of one driver call.
func (o *Observer) backendCall(ctx context.Context, e syncguard.Event) {
	op := opIndex(e.Type)
	if op < 0 {
		return
	}
	r := resultIndex(e.Result)
	switch e.Type {
	case syncguard.EventAcquire:
		i := attemptOutcome(r)
		o.pick(o.fast.attempts[i], setKey{metric: mAttempts, outcome: attemptOutcomes[i]}, errCode(e, i == attError)).n.Add(1)
		if e.Handoff && r == resOK {
			o.fast.handoffs.n.Add(1)
		}
	case syncguard.EventExtend:
		if e.AutoExtend && r != resOK {
			o.pick(at(o.fast.result[:], r), setKey{metric: mExtendFailures, outcome: e.Result}, e.Code).n.Add(1)
		}
	case syncguard.EventRate:
		i := max(r, resOK) // the decisions are indexed like the results
		o.pick(o.fast.rate[i], setKey{metric: mRate, outcome: decisions[i]}, e.Code).n.Add(1)
	}
	o.record(ctx, o.pick(at(o.fast.backend[op][:], r), setKey{metric: mBackend, op: e.Type, outcome: e.Result}, e.Code), e.Latency)

	if o.tracer == nil {
		return
	}
	// A backend call makes a span only under a recording span: its
	// operation's (when sampled) or the caller's. It never starts a
	// trace, and inside an unsampled operation it costs nothing more.
	parent := trace.SpanFromContext(ctx)
	st, _ := parent.(*opSpan)
	if st != nil && st.op == syncguard.EventAcquisition && e.Type == syncguard.EventAcquire {
		st.attempts.Add(1)
	}
	if !parent.IsRecording() {
		return
	}
	// A lease release is one backend call: its span (syncguard.release)
	// is that call's span too, rather than the parent of a second one.
	if st != nil && st.op == syncguard.EventLeaseRelease && e.Type == syncguard.EventRelease {
		return
	}
	end := time.Now()
	_, span := o.tracer.Start(ctx, backendSpanNames[op], spanKindClient, trace.WithTimestamp(end.Add(-e.Latency)))
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

// endOp sets the final attributes and status of an operation's recorded
// span and ends it.
func (o *Observer) endOp(st *opSpan, e syncguard.Event, attrs ...attribute.KeyValue) {
	if st.ended.Swap(true) {
		return
	}
	var buf [12]attribute.KeyValue
	a := append(append(buf[:0], o.system), attrs...)
	st.SetAttributes(o.identity(a, e)...)
	if e.Result == syncguard.ResultError {
		st.SetStatus(codes.Error, e.Code.String())
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

// Backend operations, indexed by opIndex.
var (
	backendOps = [...]syncguard.EventType{syncguard.EventAcquire, syncguard.EventRelease, syncguard.EventExtend,
		syncguard.EventLookup, syncguard.EventRate, syncguard.EventRecord}
	backendSpanNames = func() (n [len(backendOps)]string) {
		for i, op := range backendOps {
			n[i] = SpanBackendPrefix + string(op)
		}
		return n
	}()
)

// opIndex is t's index in backendOps, or -1.
func opIndex(t syncguard.EventType) int {
	switch t {
	case syncguard.EventAcquire:
		return 0
	case syncguard.EventRelease:
		return 1
	case syncguard.EventExtend:
		return 2
	case syncguard.EventLookup:
		return 3
	case syncguard.EventRate:
		return 4
	case syncguard.EventRecord:
		return 5
	}
	return -1
}

// Event results, indexed by resultIndex.
const (
	resOK = iota
	resFail
	resError
	nResults
)

var (
	results   = [nResults]string{syncguard.ResultOK, syncguard.ResultFail, syncguard.ResultError}
	decisions = [nResults]string{"allowed", "refused", "error"}
)

// resultIndex is r's index in results, or -1 for a result this package
// does not know.
func resultIndex(r string) int {
	switch r {
	case syncguard.ResultOK:
		return resOK
	case syncguard.ResultFail:
		return resFail
	case syncguard.ResultError:
		return resError
	}
	return -1
}

// Outcomes of acquisitions (syncguard.lock.acquisitions and the wait).
const (
	acqAcquired = iota
	acqContended
	acqTimedOut
	acqError
	nAcqOutcomes
)

var acquisitionOutcomes = [nAcqOutcomes]string{"acquired", "contended", "timed_out", "error"}

func acquisitionOutcome(e syncguard.Event) int {
	switch {
	case e.Result == syncguard.ResultOK:
		return acqAcquired
	case e.Result == syncguard.ResultFail:
		return acqContended
	case e.Code == driver.AcquisitionTimeout:
		return acqTimedOut
	}
	return acqError
}

// Outcomes of acquisition attempts (syncguard.lock.attempts).
const (
	attAcquired = iota
	attContended
	attError
	nAttOutcomes
)

var attemptOutcomes = [nAttOutcomes]string{"acquired", "contended", "error"}

func attemptOutcome(r int) int {
	switch r {
	case resOK:
		return attAcquired
	case resFail:
		return attContended
	}
	return attError
}

// Outcomes of OncePerKey calls (syncguard.idempotency.requests).
const (
	onceExecuted = iota
	onceReplayed
	onceConflict
	onceError
	nOnceOutcomes
)

// reasonReplayed is the Reason of an OncePerKey call answered from its
// record (see syncguard.Event).
const reasonReplayed = "replayed"

var onceOutcomes = [nOnceOutcomes]string{"executed", "replayed", "conflict", "error"}

func onceOutcome(e syncguard.Event) int {
	switch {
	case e.Result == syncguard.ResultOK && e.Reason == reasonReplayed:
		return onceReplayed
	case e.Result == syncguard.ResultOK:
		return onceExecuted
	case e.Result == syncguard.ResultFail:
		return onceConflict
	}
	return onceError
}

// errCode is e's code if isErr, else 0.
func errCode(e syncguard.Event, isErr bool) driver.Code {
	if isErr {
		return e.Code
	}
	return 0
}

// Kinds of series, as setKey.metric.
const (
	mAcquisitions = iota + 1 // and the wait histogram
	mAttempts
	mIdempotency
	mExtendFailures
	mRate
	mBackend
	// db.system only:
	mHold
	mLost
	mHandoffs
	nSeries
)

// seriesDefs names the counter and the histogram (with its bucket bounds)
// that a series of each kind feeds, "" for none.
var seriesDefs = [nSeries]struct {
	counter, histogram string
	bounds             []float64
}{
	mAcquisitions:   {counter: MetricAcquisitions, histogram: MetricWaitDuration, bounds: waitBounds},
	mAttempts:       {counter: MetricAttempts},
	mIdempotency:    {counter: MetricIdempotency},
	mExtendFailures: {counter: MetricAutoExtendFailures},
	mRate:           {counter: MetricRateDecisions},
	mBackend:        {histogram: MetricBackendDuration, bounds: backendBounds},
	mHold:           {histogram: MetricHoldDuration, bounds: holdBounds},
	mLost:           {counter: MetricLeasesLost},
	mHandoffs:       {counter: MetricHandoffs},
}

// setKey identifies the attribute set of one measurement; metric tells
// which attributes it has.
type setKey struct {
	metric  int
	op      syncguard.EventType
	outcome string
	code    driver.Code
}

// measurementOpts is one attribute set of a metric: the options of a
// histogram measurement, ready to pass without allocating, or the series
// of a counter; with WithProducer, also the histogram's series.
type measurementOpts struct {
	metric int // setKey.metric
	set    attribute.Set
	record []metric.RecordOption

	n       atomic.Int64 // the counter's value
	counter metric.Int64ObservableCounter
	observe []metric.ObserveOption

	hist *histogram // the histogram series (WithProducer), or nil
}

// record adds the duration v to the histogram of opts's metric (with
// WithProducer, to opts's own series).
func (o *Observer) record(ctx context.Context, opts *measurementOpts, v time.Duration) {
	if o.producer {
		opts.hist.add(v)
		return
	}
	o.hists[opts.metric].Record(ctx, v.Seconds(), opts.record...)
}

// fastSets holds the measurement options of the sets without an error
// type, by index.
type fastSets struct {
	acquisitions [nAcqOutcomes]*measurementOpts
	attempts     [nAttOutcomes]*measurementOpts
	idem         [nOnceOutcomes]*measurementOpts
	rate         [nResults]*measurementOpts
	result       [nResults]*measurementOpts // auto-extend failures
	backend      [len(backendOps)][nResults]*measurementOpts
	hold         *measurementOpts
	lost         *measurementOpts
	handoffs     *measurementOpts
}

func (o *Observer) buildFast() {
	f := &o.fast
	for i, out := range acquisitionOutcomes {
		f.acquisitions[i] = o.newOpts(setKey{metric: mAcquisitions, outcome: out})
	}
	for i, out := range attemptOutcomes {
		f.attempts[i] = o.newOpts(setKey{metric: mAttempts, outcome: out})
	}
	for i, out := range onceOutcomes {
		f.idem[i] = o.newOpts(setKey{metric: mIdempotency, outcome: out})
	}
	for i := range results {
		f.rate[i] = o.newOpts(setKey{metric: mRate, outcome: decisions[i]})
		f.result[i] = o.newOpts(setKey{metric: mExtendFailures, outcome: results[i]})
		for j, op := range backendOps {
			f.backend[j][i] = o.newOpts(setKey{metric: mBackend, op: op, outcome: results[i]})
		}
	}
	f.hold = o.newOpts(setKey{metric: mHold})
	f.lost = o.newOpts(setKey{metric: mLost})
	f.handoffs = o.newOpts(setKey{metric: mHandoffs})
}

// pick returns fast, unless the measurement's attribute set has an error
// type (code is not 0) or is not among the fast sets (fast is nil): then
// the cached options of k with code.
func (o *Observer) pick(fast *measurementOpts, k setKey, code driver.Code) *measurementOpts {
	if code == 0 && fast != nil {
		return fast
	}
	k.code = code
	return o.opts(k)
}

// at is a[i], or nil if i is out of range.
func at(a []*measurementOpts, i int) *measurementOpts {
	if i < 0 || i >= len(a) {
		return nil
	}
	return a[i]
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
	v := o.newOpts(k)
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

// newOpts builds the measurement options of k's attribute set and
// lists a counter series for collection; called by New or under setsMu.
func (o *Observer) newOpts(k setKey) *measurementOpts {
	attrs := []attribute.KeyValue{o.system}
	switch k.metric {
	case mAcquisitions, mIdempotency, mAttempts:
		attrs = append(attrs, AttrOutcome.String(k.outcome))
	case mExtendFailures:
		attrs = append(attrs, AttrResult.String(k.outcome))
	case mRate:
		attrs = append(attrs, AttrDecision.String(k.outcome))
	case mBackend:
		attrs = append(attrs, AttrOperation.String(string(k.op)), AttrResult.String(k.outcome))
	}
	if k.code != 0 {
		attrs = append(attrs, AttrErrorType.String(k.code.String()))
	}
	set := attribute.NewSet(attrs...)
	v := &measurementOpts{metric: k.metric, set: set}
	def := seriesDefs[k.metric]
	if def.histogram != "" {
		v.record = []metric.RecordOption{metric.WithAttributeSet(set)}
		if o.producer {
			v.hist = newHistogram(def.bounds)
		}
	}
	if def.counter != "" {
		v.counter = o.counters[k.metric]
		v.observe = []metric.ObserveOption{metric.WithAttributeSet(set)}
	}
	o.series = append(o.series, v)
	return v
}

func lenOf(m *map[setKey]*measurementOpts) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
