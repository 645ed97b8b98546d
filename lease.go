package syncguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// Lease is a held lock, returned by [Guard.Acquire] and [Guard.TryAcquire] and
// passed to the function of [Guard.Do]. Release it when done, typically with
// defer lease.Close(). A Lease is safe for concurrent use; a nil *Lease is
// inert (its methods do nothing and report false).
type Lease[C driver.Capabilities] struct {
	g      *Guard[C]
	key    string
	lockID string
	fence  Fence
	ttl    time.Duration

	acquiredAt time.Time // local clock, for EventLeaseRelease's Held

	expiresAtMs atomic.Int64

	// parent is Acquire's context. The lease's own context (ctx, a child
	// of parent) and the lost channel are made on first use, under mu:
	// most leases (no AutoExtend, Context and Lost never called) need
	// neither, and a child of a shared cancellable context costs a lock
	// of its parent at creation and at cancellation. Made late, they are
	// made in the state they would be in: cancelled (with the loss as
	// cause) or closed when the lease was already lost or released.
	parent context.Context
	ctx    context.Context         // nil until made; guarded by mu
	cancel context.CancelCauseFunc // nil until made; guarded by mu

	lost     chan struct{} // nil until made; guarded by mu
	lostOnce sync.Once
	lostErr  atomic.Pointer[error]

	hbStop context.CancelFunc // stops the heartbeat; nil without one
	hbDone chan struct{}      // closed when the heartbeat exits

	mu    sync.Mutex
	state leaseState
	// done is closed when the release finished; made by release only for
	// a Close that waits for it (nil otherwise).
	done chan struct{}
}

type leaseState int

const (
	leaseActive leaseState = iota
	leaseReleasing
	leaseReleased
)

func (g *Guard[C]) newLease(ctx context.Context, key string, res driver.AcquireResult, cfg acquireConfig) *Lease[C] {
	l := &Lease[C]{
		g:      g,
		key:    key,
		lockID: res.LockID,
		fence:  res.Fence,
		ttl:    cfg.ttl,
		parent: ctx,

		acquiredAt: time.Now(),
	}
	l.expiresAtMs.Store(res.ExpiresAtMs)
	if *cfg.autoExtend {
		hctx, stop := context.WithCancel(l.Context())
		l.hbStop = stop
		l.hbDone = make(chan struct{})
		go l.heartbeat(hctx, time.Now())
	}
	return l
}

// Key returns the normalised key.
func (l *Lease[C]) Key() string {
	if l == nil {
		return ""
	}
	return l.key
}

// LockID returns the lock's ID, which with the key is what releases or extends
// the lock at the driver.
func (l *Lease[C]) LockID() string {
	if l == nil {
		return ""
	}
	return l.lockID
}

// ExpiresAt returns the lock's expiry as last reported by the backend's clock.
func (l *Lease[C]) ExpiresAt() time.Time {
	if l == nil {
		return time.Time{}
	}
	return time.UnixMilli(l.expiresAtMs.Load())
}

// ExpiresAtMs returns ExpiresAt in Unix milliseconds.
func (l *Lease[C]) ExpiresAtMs() int64 {
	if l == nil {
		return 0
	}
	return l.expiresAtMs.Load()
}

// Context returns a context derived from Acquire's that is also cancelled when
// the lease is released or lost; for a lost lease, context.Cause matches
// [ErrLockLost].
func (l *Lease[C]) Context() context.Context {
	if l == nil {
		return canceledContext
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx == nil {
		l.ctx, l.cancel = context.WithCancelCause(l.parent)
		// The state the context would be in had it been made with
		// the lease: a loss cancelled it first, else a release.
		switch {
		case l.lostErr.Load() != nil:
			l.cancel(*l.lostErr.Load())
		case l.state == leaseReleased:
			l.cancel(context.Canceled)
		}
	}
	return l.ctx
}

var canceledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Lost returns a channel closed when the lease is lost: an extension found the
// lock gone, or the heartbeat failed until the lease expired. A release does
// not close it.
func (l *Lease[C]) Lost() <-chan struct{} {
	if l == nil {
		return closedChan
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		if l.lostErr.Load() != nil {
			l.lost = closedChan
		} else {
			l.lost = make(chan struct{})
		}
	}
	return l.lost
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// lostCause returns the error that marked the lease lost, or nil.
func (l *Lease[C]) lostCause() error {
	if p := l.lostErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *Lease[C]) markLost(reason string, cause error) {
	l.lostOnce.Do(func() {
		err := fmt.Errorf("%w: %s", ErrLockLost, reason)
		if cause != nil {
			err = fmt.Errorf("%w: %s: %w", ErrLockLost, reason, cause)
		}
		l.mu.Lock()
		l.lostErr.Store(&err)
		// Cancel first, so that whoever sees Lost closed also sees the
		// context cancelled with its cause.
		if l.cancel != nil {
			l.cancel(err)
		}
		if l.lost != nil {
			close(l.lost)
		} else {
			l.lost = closedChan
		}
		l.mu.Unlock()
		l.g.emitLost(l, reason)
	})
}

// Release releases the lock with ctx and reports whether this call deleted it;
// errors are returned, not reported. Only the first Release or Close reaches
// the backend; later calls return false without I/O. A release that fails with
// ServiceUnavailable or NetworkTimeout is retried in the background until the
// lease expires (as for Close and [Guard.Do]).
func (l *Lease[C]) Release(ctx context.Context) (bool, error) {
	ok, _, err := l.release(ctx)
	return ok, err
}

// release is Release that also reports whether this call reached the
// backend (false when the lease was already released or being released).
func (l *Lease[C]) release(ctx context.Context) (ok, called bool, err error) {
	if l == nil {
		return false, false, nil
	}
	if ctx == nil {
		return false, false, invalidArg("nil context")
	}
	l.mu.Lock()
	if l.state != leaseActive {
		l.mu.Unlock()
		return false, false, nil
	}
	l.state = leaseReleasing
	l.mu.Unlock()
	res, err := l.doRelease(ctx)
	return res.OK, true, err
}

// doRelease performs the one backend release of the lease; the caller has
// moved it to leaseReleasing.
func (l *Lease[C]) doRelease(ctx context.Context) (res driver.ReleaseResult, err error) {
	l.stopHeartbeat()
	observed := l.g.opObserving()
	var start time.Time
	if observed {
		ctx, start = l.g.startOp(ctx, EventLeaseRelease), time.Now()
		ctx = l.g.withOpDigests(ctx, l.key, l.lockID)
	}
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
		if observed {
			l.g.emitLeaseRelease(ctx, l, start, res, err)
		}
		l.mu.Lock()
		l.state = leaseReleased
		if l.done != nil {
			close(l.done)
		}
		if l.cancel != nil {
			l.cancel(context.Canceled)
		}
		l.mu.Unlock()
	}()
	res, err = l.g.d.Release(ctx, l.key, l.lockID)
	if err != nil && IsUnavailable(err) {
		l.releaseLater()
	}
	return res, err
}

// Delays between the background retries of a release (releaseLater).
const (
	releaseRetryFirst = 50 * time.Millisecond
	releaseRetryMax   = 500 * time.Millisecond
)

// releaseLater retries the release of the lease in the background after it
// failed because the backend was away, so that the key frees soon after the
// backend returns instead of at the end of the TTL. The retries end at the
// lease's expiry (the backend's last reported expiry read on the local
// clock, at most one TTL from now): after it the lock is free anyway, so
// the goroutine never outlives the lease. Each retry is bounded
// by the driver's call timeout and by that expiry; a retry that the backend
// answers (released, or not found because it expired) ends them, and so does
// any error other than ServiceUnavailable or NetworkTimeout.
func (l *Lease[C]) releaseLater() {
	left := min(time.Until(time.UnixMilli(l.expiresAtMs.Load())), l.ttl)
	if left <= 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), left)
		defer cancel()
		delay := releaseRetryFirst
		t := time.NewTimer(delay)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := l.retryRelease(ctx); err == nil || !IsUnavailable(err) || ctx.Err() != nil {
				return
			}
			delay = min(2*delay, releaseRetryMax)
			t.Reset(delay)
		}
	}()
}

// retryRelease is one background retry of the release; a driver panic is
// an error that ends the retries.
func (l *Lease[C]) retryRelease(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	_, err = l.g.d.Release(ctx, l.key, l.lockID)
	return err
}

func panicError(r any) error {
	if e, ok := r.(error); ok {
		return &LockError{Code: driver.Internal, Message: "driver panicked: " + e.Error(), Cause: e}
	}
	return &LockError{Code: driver.Internal, Message: fmt.Sprintf("driver panicked: %v", r)}
}

// Close releases the lock unless it was already released, for use with defer.
// It waits for a release in flight, never panics, bounds the release with
// [WithReleaseTimeout] and reports a failure to the release-error callback
// ([WithOnReleaseError]).
func (l *Lease[C]) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	switch l.state {
	case leaseReleased:
		l.mu.Unlock()
		return
	case leaseReleasing:
		if l.done == nil {
			l.done = make(chan struct{})
		}
		done := l.done
		l.mu.Unlock()
		<-done
		return
	}
	l.state = leaseReleasing
	l.mu.Unlock()

	// The release must not be cancelled with the lease's context, but it
	// keeps its values (such as the caller's trace span): those of
	// Acquire's context.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.parent), l.g.cfg.releaseTimeout)
	defer cancel()
	if _, err := l.doRelease(ctx); err != nil {
		l.g.reportReleaseError(err, l)
	}
}

// Extend sets the lock's expiry to backend-now + ttl (a reset, not an
// addition) and reports whether the lock was still held. It always asks the
// backend, even after Release; false on an unreleased lease marks it lost. An
// invalid ttl (see [TTL]) is InvalidArgument.
func (l *Lease[C]) Extend(ctx context.Context, ttl time.Duration) (bool, error) {
	if l == nil {
		return false, nil
	}
	if err := driver.CheckContext(ctx); err != nil {
		return false, err
	}
	if msg := ttlProblem(ttl); msg != "" {
		return false, invalidArg(fmt.Sprintf("Lease.Extend: %s, got %v", msg, ttl))
	}
	res, err := l.g.d.Extend(ctx, l.key, l.lockID, ttl)
	if err != nil {
		return false, err
	}
	if res.OK {
		l.expiresAtMs.Store(res.ExpiresAtMs)
		return true, nil
	}
	l.mu.Lock()
	active := l.state == leaseActive
	l.mu.Unlock()
	if active {
		l.markLost("extend found the lock gone ("+res.Detail+")", nil)
	}
	return false, nil
}

func (l *Lease[C]) stopHeartbeat() {
	if l.hbStop != nil {
		l.hbStop()
		<-l.hbDone
	}
}

// heartbeat extends the lease every TTL/3 until ctx ends. A transient
// failure is retried sooner; the lease is lost when an extend reports the
// lock gone or when no extend succeeded before the local estimate of the
// expiry (measured from the start of the last successful call).
func (l *Lease[C]) heartbeat(ctx context.Context, acquiredAt time.Time) {
	defer close(l.hbDone)
	ctx = withAutoExtend(ctx) // marks its extend events
	interval := l.ttl / 3
	deadline := acquiredAt.Add(l.ttl)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		cctx, cancel := context.WithDeadline(ctx, deadline)
		res, err := l.g.d.Extend(cctx, l.key, l.lockID, l.ttl)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && res.OK:
			l.expiresAtMs.Store(res.ExpiresAtMs)
			deadline = start.Add(l.ttl)
			timer.Reset(interval)
		case err == nil:
			l.markLost("auto-extend found the lock gone ("+res.Detail+")", nil)
			return
		default:
			left := time.Until(deadline)
			if left <= 0 {
				l.markLost("auto-extend failed until the lease expired", err)
				return
			}
			timer.Reset(min(max(interval/4, 10*time.Millisecond), left))
		}
	}
}
