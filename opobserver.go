package syncguard

import (
	"context"
	"errors"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// Operation event types: events of whole operations rather than single
// driver calls. They are delivered only to an [OperationObserver]; a plain
// [Observer] never sees them.
const (
	// EventAcquisition is one acquisition by [Guard.Acquire],
	// [Guard.TryAcquire] or [Guard.Do], retries and waiting included
	// (argument validation failures are not reported). Result: ok
	// (acquired), fail with Reason "locked" (TryAcquire found the key
	// held) or error with its Code (AcquisitionTimeout when retries or
	// the Timeout ran out). Latency is the time from the start of the
	// acquisition to its outcome: the wait.
	EventAcquisition EventType = "acquisition"
	// EventLeaseRelease is the release of a [Lease] ([Lease.Release],
	// [Lease.Close], the end of [Guard.Do]), with the result of the
	// driver's Release. Held is the time since the lease was acquired.
	EventLeaseRelease EventType = "leaseRelease"
	// EventRate is one AllowN call through the telemetry decorator: ok
	// when the request was granted (n = 0, an inspection, is ok), fail
	// with Reason "limited" when refused, or error.
	EventRate EventType = "rate"
	// EventOnce is one [OncePerKey.Do] call (argument validation failures
	// are not reported): ok when the function ran in this call, ok with
	// Reason "replayed" when a stored outcome (a result or a
	// [RecordedError]) was returned, fail with Reason "in-progress" for
	// [ErrInProgress], and error with the Code of any other error (fn's
	// own errors included: Internal unless they are *LockErrors). A
	// panicking fn is not reported.
	EventOnce EventType = "once"
)

// Reasons of operation events (see Event.Reason).
const (
	reasonLimited    = "limited"
	reasonReplayed   = "replayed"
	reasonInProgress = "in-progress"
)

// OperationObserver is an [Observer] that also sees the context of each
// call and the operation events ([EventAcquisition], [EventLeaseRelease],
// [EventRate], [EventOnce]), as metrics and tracing need: a tracer nests
// its spans under the caller's span.
//
// Events go to OnEventContext instead of OnEvent; the fields Handoff,
// AutoExtend and Held are set only in events delivered this way (a plain
// Observer sees exactly the events it saw before operation events
// existed). [MultiObserver] returns an OperationObserver that forwards
// each event in the form each of its observers takes.
//
// Both methods are called synchronously, may be called concurrently and
// must be fast; panics are recovered and never change a result.
type OperationObserver interface {
	Observer
	// StartOperation is called when a Guard acquisition (op
	// EventAcquisition), a lease release (op EventLeaseRelease) or an
	// [OncePerKey.Do] (op EventOnce, whose acquisitions and releases nest
	// in it) begins.
	// The context it returns, which must be derived from ctx, is the one
	// the operation's driver calls receive and the one passed with the
	// operation's events, its final event included (exactly one per
	// started operation). A nil result means ctx.
	StartOperation(ctx context.Context, op EventType) context.Context
	// OnEventContext receives an event with the context of the call it
	// reports (for EventLost: the lease's context).
	OnEventContext(ctx context.Context, e Event)
}

// isOperation reports whether t is an operation event type, delivered
// only to OperationObservers.
func (t EventType) isOperation() bool {
	switch t {
	case EventAcquisition, EventLeaseRelease, EventRate, EventOnce:
		return true
	}
	return false
}

// notifyCtx delivers e with ctx to o in the form o takes, recovering any
// panic.
func notifyCtx(o Observer, ctx context.Context, e Event) {
	defer func() { _ = recover() }()
	if oo, ok := o.(OperationObserver); ok {
		oo.OnEventContext(ctx, e)
		return
	}
	if e.Type.isOperation() {
		return
	}
	e.Handoff, e.AutoExtend, e.Held = false, false, 0
	o.OnEvent(e)
}

// startOperation calls o's StartOperation if o is an OperationObserver; a
// panic or a nil result leaves ctx unchanged.
func startOperation(o Observer, ctx context.Context, op EventType) (out context.Context) {
	oo, ok := o.(OperationObserver)
	if !ok {
		return ctx
	}
	out = ctx
	defer func() {
		if recover() != nil {
			out = ctx
		}
	}()
	if c := oo.StartOperation(ctx, op); c != nil {
		out = c
	}
	return out
}

// StartOperation starts op on each OperationObserver in order, each one
// seeing the context returned by the one before.
func (m multiObserver) StartOperation(ctx context.Context, op EventType) context.Context {
	for _, o := range m {
		ctx = startOperation(o, ctx, op)
	}
	return ctx
}

// OnEventContext passes e to each observer in the form it takes.
func (m multiObserver) OnEventContext(ctx context.Context, e Event) {
	for _, o := range m {
		notifyCtx(o, ctx, e)
	}
}

// autoExtendKey marks the context of a lease's heartbeat.
type autoExtendKey struct{}

func withAutoExtend(ctx context.Context) context.Context {
	return context.WithValue(ctx, autoExtendKey{}, true)
}

func isAutoExtend(ctx context.Context) bool {
	on, _ := ctx.Value(autoExtendKey{}).(bool)
	return on
}

// opObserving reports whether the Guard has an observer that takes
// operation events.
func (g *Guard[C]) opObserving() bool {
	_, ok := g.cfg.observer.(OperationObserver)
	return ok
}

// startOp starts op on the Guard's OperationObserver, if any.
func (g *Guard[C]) startOp(ctx context.Context, op EventType) context.Context {
	if !g.opObserving() {
		return ctx
	}
	return startOperation(g.cfg.observer, ctx, op)
}

// emitOp sends the operation event ev (its KeyHash set) to the Guard's
// OperationObserver, adding the raw key as configured.
func (g *Guard[C]) emitOp(ctx context.Context, ev Event, key string) {
	if key != "" && wantRaw(g.cfg.raw, ev) {
		ev.Key = key
	}
	notifyCtx(g.cfg.observer, ctx, ev)
}

// emitAcquisition reports the acquisition of key that started at start.
func (g *Guard[C]) emitAcquisition(ctx context.Context, key string, start time.Time, res driver.AcquireResult, err error) {
	ev := Event{Type: EventAcquisition, KeyHash: driver.HashKey(key), Latency: time.Since(start)}
	setResult(&ev, err == nil && res.Acquired, driver.ReasonLocked, err)
	g.emitOp(ctx, ev, key)
}

// emitLeaseRelease reports the release of l.
func (g *Guard[C]) emitLeaseRelease(ctx context.Context, l *Lease[C], start time.Time, res driver.ReleaseResult, err error) {
	ev := Event{Type: EventLeaseRelease, KeyHash: driver.HashKey(l.key), LockIDHash: driver.HashKey(l.lockID),
		Latency: time.Since(start), Held: start.Sub(l.acquiredAt)}
	setResult(&ev, res.OK, res.Detail, err)
	if wantRaw(g.cfg.raw, ev) {
		ev.Key, ev.LockID = l.key, l.lockID
	}
	notifyCtx(g.cfg.observer, ctx, ev)
}

// emitOnce reports an OncePerKey.Do call for the record name.
func (g *Guard[C]) emitOnce(ctx context.Context, name string, start time.Time, replayed bool, err error) {
	ev := Event{Type: EventOnce, KeyHash: driver.HashKey(name), Latency: time.Since(start)}
	var rec *RecordedError
	switch {
	case replayed && (err == nil || errors.As(err, &rec)):
		ev.Result, ev.Reason = ResultOK, reasonReplayed
	case errors.Is(err, ErrInProgress):
		ev.Result, ev.Reason = ResultFail, reasonInProgress
	default:
		setResult(&ev, true, "", err)
	}
	g.emitOp(ctx, ev, name)
}
