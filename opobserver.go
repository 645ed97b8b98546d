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
	// EventAcquisition is one acquisition of [Guard.Acquire], TryAcquire or
	// Do, retries included: ok, fail "locked" (TryAcquire), or error
	// (AcquisitionTimeout when retries ran out). Latency is the wait.
	EventAcquisition EventType = "acquisition"
	// EventLeaseRelease is the release of a [Lease] (Release, Close, end of
	// Do), with the driver's result; Held is set.
	EventLeaseRelease EventType = "leaseRelease"
	// EventOnce is one [OncePerKey.Do]: ok (fn ran), ok "replayed" (a stored
	// outcome), fail "in-progress", or error (fn's own errors included). A
	// panicking fn is not reported.
	EventOnce EventType = "once"
)

// Reasons of operation events (see Event.Reason).
const (
	reasonLimited    = "limited"
	reasonReplayed   = "replayed"
	reasonInProgress = "in-progress"
)

// OperationObserver is an [Observer] that receives events with their call's
// context through OnEventContext (instead of OnEvent), and the operation
// events ([EventAcquisition], [EventLeaseRelease], [EventOnce]),
// as tracing and metrics need. Its methods are called synchronously, possibly
// concurrently, and must be fast; panics are recovered.
// It may also have a method NeedsDigests(ctx context.Context) bool: false
// leaves KeyHash and LockIDHash of the events of ctx's call or operation
// empty, sparing their hashing (metrics only, an unsampled trace); without
// it, or on a panic, events carry them (docs/observability.md).
type OperationObserver interface {
	Observer
	// StartOperation is called when an acquisition, a lease release or an
	// [OncePerKey.Do] begins. The context it returns (derived from ctx; nil
	// means ctx) goes to the operation's driver calls and events, exactly one
	// final event per operation.
	StartOperation(ctx context.Context, op EventType) context.Context
	// OnEventContext receives an event with the context of its call (for
	// EventLost, the lease's).
	OnEventContext(ctx context.Context, e Event)
}

// isOperation reports whether t is an operation event type, delivered
// only to OperationObservers.
func (t EventType) isOperation() bool {
	switch t {
	case EventAcquisition, EventLeaseRelease, EventOnce:
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
	ev := Event{Type: EventAcquisition, Latency: time.Since(start)}
	ev.KeyHash, _ = eventDigests(g.cfg.observer, ctx, key, "")
	setResult(&ev, err == nil && res.Acquired, driver.ReasonLocked, err)
	g.emitOp(ctx, ev, key)
}

// emitLeaseRelease reports the release of l.
func (g *Guard[C]) emitLeaseRelease(ctx context.Context, l *Lease[C], start time.Time, res driver.ReleaseResult, err error) {
	ev := Event{Type: EventLeaseRelease, Latency: time.Since(start), Held: start.Sub(l.acquiredAt)}
	ev.KeyHash, ev.LockIDHash = eventDigests(g.cfg.observer, ctx, l.key, l.lockID)
	setResult(&ev, res.OK, res.Detail, err)
	if wantRaw(g.cfg.raw, ev) {
		ev.Key, ev.LockID = l.key, l.lockID
	}
	notifyCtx(g.cfg.observer, ctx, ev)
}

// emitOnce reports an OncePerKey.Do call for the record name.
func (g *Guard[C]) emitOnce(ctx context.Context, name string, start time.Time, replayed bool, err error) {
	ev := Event{Type: EventOnce, Latency: time.Since(start)}
	ev.KeyHash, _ = eventDigests(g.cfg.observer, ctx, name, "")
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
