package syncguard

import (
	"context"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// observed is the Guard's own view of its driver when an observer is
// configured: every LockStore call, rate call, hand-off attempt and (through
// observedRecords) record call emits one Event. It holds no mutable state.
type observed struct {
	inner driver.LockStore
	rates driver.RateStore // nil if the driver has none
	obs   Observer
	raw   func(Event) bool
	ops   bool      // obs is an OperationObserver
	epoch time.Time // calls are timed as monotonic offsets from it (now)
}

// now returns the time since o.epoch on the monotonic clock: half the
// cost of time.Now, which also reads the wall clock.
func (o *observed) now() time.Duration { return time.Since(o.epoch) }

// since returns the time elapsed since start, a value of now.
func (o *observed) since(start time.Duration) time.Duration { return o.now() - start }

// newObserved returns an observed view of inner (a Guard's driver) or of
// rates (a RateLimiter's store) reporting to obs.
func newObserved(inner driver.LockStore, rates driver.RateStore, obs Observer, raw func(Event) bool) *observed {
	o := &observed{inner: inner, rates: rates, obs: obs, raw: raw, epoch: time.Now()}
	_, o.ops = obs.(OperationObserver)
	return o
}

// observe routes g's driver calls through an observed view.
func (g *Guard[C]) observe() {
	o := newObserved(g.base, nil, g.cfg.observer, g.cfg.raw)
	g.d = o
	if g.handoff != nil {
		g.handoff = observedHandoff{o, g.handoff}
	}
	if g.records != nil {
		g.records = observedRecords{o, g.records}
	}
}

func (o *observed) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	start := o.now()
	res, err := o.inner.Acquire(ctx, key, ttl)
	o.emitAcquire(ctx, key, start, res, err, false)
	return res, err
}

// emitAcquire emits the event of an acquisition attempt of key that
// started at start; handoff marks an attempt of a queued waiter.
func (o *observed) emitAcquire(ctx context.Context, key string, start time.Duration, res driver.AcquireResult, err error, handoff bool) {
	ev := Event{Type: EventAcquire, Latency: o.since(start), Handoff: handoff && o.ops}
	ev.KeyHash, _ = eventDigests(o.obs, ctx, key, "")
	setResult(&ev, res.Acquired, driver.ReasonLocked, err)
	if o.wantRaw(ev) {
		ev.Key = key
		if err == nil && res.Acquired {
			ev.LockID = res.LockID
		}
	}
	notifyCtx(o.obs, ctx, ev)
}

func (o *observed) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	start := o.now()
	res, err := o.inner.Release(ctx, key, lockID)
	o.emitID(ctx, EventRelease, key, lockID, o.since(start), res.OK, res.Detail, err)
	return res, err
}

func (o *observed) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	start := o.now()
	res, err := o.inner.Extend(ctx, key, lockID, ttl)
	o.emitID(ctx, EventExtend, key, lockID, o.since(start), res.OK, res.Detail, err)
	return res, err
}

func (o *observed) IsLocked(ctx context.Context, key string) (bool, error) {
	start := o.now()
	locked, err := o.inner.IsLocked(ctx, key)
	o.emitKey(ctx, EventLookup, key, o.since(start), locked, "", err)
	return locked, err
}

func (o *observed) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	start := o.now()
	info, err := o.inner.LookupByKey(ctx, key)
	o.emitKey(ctx, EventLookup, key, o.since(start), info != nil, "", err)
	return info, err
}

func (o *observed) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	start := o.now()
	info, err := o.inner.LookupByID(ctx, lockID)
	o.emitID(ctx, EventLookup, "", lockID, o.since(start), info != nil, "", err)
	return info, err
}

// AllowN emits a rate event.
func (o *observed) AllowN(ctx context.Context, key string, limit driver.RateLimit, n int) (driver.RateResult, error) {
	start := o.now()
	res, err := o.rates.AllowN(ctx, key, limit, n)
	o.emitKey(ctx, EventRate, key, o.since(start), n <= 0 || res.Allowed > 0, reasonLimited, err)
	return res, err
}

func (o *observed) ResetRate(ctx context.Context, key string) error {
	return o.rates.ResetRate(ctx, key)
}

// emitKey emits an event for a key-addressed call whose success is ok;
// reason becomes the reason of a failure.
func (o *observed) emitKey(ctx context.Context, typ EventType, key string, lat time.Duration, ok bool, reason string, err error) {
	ev := Event{Type: typ, Latency: lat}
	ev.KeyHash, _ = eventDigests(o.obs, ctx, key, "")
	setResult(&ev, ok, reason, err)
	if o.wantRaw(ev) {
		ev.Key = key
	}
	notifyCtx(o.obs, ctx, ev)
}

// emitID emits an event for a lockID-addressed call (key may be "")
// whose success is ok; detail becomes the reason of a failure.
func (o *observed) emitID(ctx context.Context, typ EventType, key, lockID string, lat time.Duration, ok bool, detail string, err error) {
	ev := Event{Type: typ, Latency: lat, AutoExtend: typ == EventExtend && o.ops && isAutoExtend(ctx)}
	ev.KeyHash, ev.LockIDHash = eventDigests(o.obs, ctx, key, lockID)
	setResult(&ev, ok, detail, err)
	if o.wantRaw(ev) {
		ev.Key, ev.LockID = key, lockID
	}
	notifyCtx(o.obs, ctx, ev)
}

func (o *observed) wantRaw(ev Event) bool { return wantRaw(o.raw, ev) }

// wantRaw reports whether raw fields are to be added to ev by the
// predicate f. A nil or panicking predicate means no.
func wantRaw(f func(Event) bool, ev Event) (raw bool) {
	if f == nil {
		return false
	}
	defer func() {
		if recover() != nil {
			raw = false
		}
	}()
	return f(ev)
}

// observedHandoff makes the attempts of a HandoffWatcher's waiters emit
// acquire events.
type observedHandoff struct {
	o *observed
	w driver.HandoffWatcher
}

func (h observedHandoff) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	w, err := h.w.WatchHandoff(ctx, key)
	if err != nil {
		return w, err
	}
	return h.wrap(key, w), nil
}

func (h observedHandoff) WarmHandoff(key string) *driver.Handoff {
	return h.wrap(key, h.w.WarmHandoff(key))
}

func (h observedHandoff) wrap(key string, w *driver.Handoff) *driver.Handoff {
	if w == nil {
		return nil
	}
	wrapped := *w
	wrapped.Acquire = func(ctx context.Context, ttl time.Duration) (driver.AcquireResult, error) {
		start := h.o.now()
		res, err := w.Acquire(ctx, ttl)
		h.o.emitAcquire(ctx, key, start, res, err, true)
		return res, err
	}
	return &wrapped
}

func setResult(ev *Event, ok bool, reason string, err error) {
	switch {
	case err != nil:
		ev.Result, ev.Code = ResultError, driver.CodeOf(err)
		if ev.Code == 0 {
			ev.Code = driver.Internal
		}
	case ok:
		ev.Result = ResultOK
	default:
		ev.Result, ev.Reason = ResultFail, reason
	}
}
