package syncguard

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Lease is a held lock: the handle returned by [Guard.Acquire] and
// [Guard.TryAcquire] and passed to the function of [Guard.Do].
//
// Release it when done, typically with defer lease.Close(). A nil *Lease is
// inert: its methods do nothing and report false. A Lease is safe for
// concurrent use; of concurrent Release and Close calls exactly one reaches
// the backend.
type Lease[C Capabilities] struct {
	g      *Guard[C]
	key    string
	lockID string
	fence  Fence
	ttl    time.Duration

	acquiredAt time.Time // local clock, for EventLeaseRelease's Held

	expiresAtMs atomic.Int64

	ctx    context.Context
	cancel context.CancelCauseFunc

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  atomic.Pointer[error]

	hbStop context.CancelFunc // stops the heartbeat; nil without one
	hbDone chan struct{}      // closed when the heartbeat exits

	mu    sync.Mutex
	state leaseState
	done  chan struct{} // closed when the release finished
}

// keyedLockStore is TEMPORARY (issue 21), until the driver contract's
// Release and Extend receive the lease's key: a driver that releases and
// extends a lock from its key and lock ID without looking the ID up (the
// Redis driver). Leases use it when the driver has it.
type keyedLockStore interface {
	ReleaseKeyed(ctx context.Context, key, lockID string) (ReleaseResult, error)
	ExtendKeyed(ctx context.Context, key, lockID string, ttl time.Duration) (ExtendResult, error)
}

// driverRelease releases the lease's lock through the driver, keyed when
// the driver can.
func (l *Lease[C]) driverRelease(ctx context.Context) (ReleaseResult, error) {
	if k := l.g.keyed; k != nil {
		return k.ReleaseKeyed(ctx, l.key, l.lockID)
	}
	return l.g.d.Release(ctx, l.lockID)
}

// driverExtend extends the lease's lock through the driver, keyed when
// the driver can.
func (l *Lease[C]) driverExtend(ctx context.Context, ttl time.Duration) (ExtendResult, error) {
	if k := l.g.keyed; k != nil {
		return k.ExtendKeyed(ctx, l.key, l.lockID, ttl)
	}
	return l.g.d.Extend(ctx, l.lockID, ttl)
}

type leaseState int

const (
	leaseActive leaseState = iota
	leaseReleasing
	leaseReleased
)

func (g *Guard[C]) newLease(ctx context.Context, key string, res AcquireResult, cfg acquireConfig) *Lease[C] {
	l := &Lease[C]{
		g:      g,
		key:    key,
		lockID: res.LockID,
		fence:  res.Fence,
		ttl:    cfg.ttl,
		lost:   make(chan struct{}),

		acquiredAt: time.Now(),
	}
	l.expiresAtMs.Store(res.ExpiresAtMs)
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	if *cfg.autoExtend {
		hctx, stop := context.WithCancel(l.ctx)
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

// LockID returns the lock's ID, the only handle that can release or extend
// it (for example from another process, with the driver's Release).
func (l *Lease[C]) LockID() string {
	if l == nil {
		return ""
	}
	return l.lockID
}

// ExpiresAt returns the lock's expiry as last reported by the backend's
// time authority.
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

// Context returns a context derived from the one passed to Acquire that is
// also cancelled when the lease is released or lost; its cause
// (context.Cause) then matches ErrLockLost for a lost lease.
func (l *Lease[C]) Context() context.Context {
	if l == nil {
		return canceledContext
	}
	return l.ctx
}

var canceledContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Lost returns a channel that is closed when the lease is lost: an Extend
// (manual or automatic) found the lock gone, or the heartbeat could not
// reach the backend before the lease expired. It is not closed by a normal
// release.
func (l *Lease[C]) Lost() <-chan struct{} {
	if l == nil {
		return closedChan
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
		l.lostErr.Store(&err)
		// Cancel first, so that whoever sees Lost closed also sees the
		// context cancelled with its cause.
		l.cancel(err)
		close(l.lost)
		l.g.emitLost(l, reason)
	})
}

// Release releases the lock with the caller's ctx and reports whether this
// call deleted it. Only the first Release or Close reaches the backend;
// later calls return false without I/O, even if the first failed (use the
// driver's Release with LockID to retry). Errors are returned, not sent to
// the release-error callback. A release that fails with ServiceUnavailable
// or NetworkTimeout (the backend away) is retried in the background until
// it succeeds or the lease expires, so the key frees soon after the backend
// returns; this holds for [Lease.Close] and [Guard.Do] too.
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
	l.done = make(chan struct{})
	l.mu.Unlock()
	res, err := l.doRelease(ctx)
	return res.OK, true, err
}

// doRelease performs the one backend release of the lease; the caller has
// moved it to leaseReleasing.
func (l *Lease[C]) doRelease(ctx context.Context) (res ReleaseResult, err error) {
	l.stopHeartbeat()
	observed := l.g.opObserving()
	var start time.Time
	if observed {
		ctx, start = l.g.startOp(ctx, EventLeaseRelease), time.Now()
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
		close(l.done)
		l.mu.Unlock()
		l.cancel(context.Canceled)
	}()
	res, err = l.driverRelease(ctx)
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
	_, err = l.driverRelease(ctx)
	return err
}

func panicError(r any) error {
	if e, ok := r.(error); ok {
		return &LockError{Code: Internal, Message: "driver panicked: " + e.Error(), Cause: e}
	}
	return &LockError{Code: Internal, Message: fmt.Sprintf("driver panicked: %v", r)}
}

// Close releases the lock unless it was already released, for use with
// defer. It never panics and returns nothing: a failed release goes to the
// Guard's release-error callback (source "disposal"). If a release is in
// flight, Close waits for it and reports nothing. With [WithDisposeTimeout],
// Close returns by the deadline even if the driver ignores its context and
// reports one NetworkTimeout error; the late outcome is dropped.
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
		done := l.done
		l.mu.Unlock()
		<-done
		return
	}
	l.state = leaseReleasing
	l.done = make(chan struct{})
	l.mu.Unlock()

	// The release must not be cancelled with the lease's context, but it
	// keeps its values (such as the caller's trace span).
	bg := context.WithoutCancel(l.ctx)
	d := l.g.cfg.disposeTimeout
	if d <= 0 {
		if _, err := l.doRelease(bg); err != nil {
			l.g.reportReleaseError(err, l)
		}
		return
	}
	ctx, cancel := context.WithTimeout(bg, d)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := l.doRelease(ctx)
		errc <- err
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-errc:
		if err != nil {
			l.g.reportReleaseError(err, l)
		}
	case <-timer.C:
		l.g.reportReleaseError(&LockError{
			Code:    NetworkTimeout,
			Message: "Lock disposal timed out after " + d.String(),
			Key:     l.key,
			LockID:  l.lockID,
			Cause:   context.DeadlineExceeded,
		}, l)
	}
}

// Extend sets the lock's expiry to backend-now + ttl (a reset, not an
// addition) and reports whether the lock was still held. It always asks the
// backend, even after Release. A false result on an unreleased lease marks
// it lost.
func (l *Lease[C]) Extend(ctx context.Context, ttl time.Duration) (bool, error) {
	if l == nil {
		return false, nil
	}
	if ctx == nil {
		return false, invalidArg("nil context")
	}
	res, err := l.driverExtend(ctx, ttl)
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
		res, err := l.driverExtend(cctx, l.ttl)
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
