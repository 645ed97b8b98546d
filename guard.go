package syncguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Guard is the entry point for locking with one driver. It adds to the
// driver's single attempts what applications need: acquisition with retry
// and backoff, leases that release on every path and can keep themselves
// alive, observers, and the fenced-only features its capability type C
// allows.
//
// A Guard is safe for concurrent use by multiple goroutines. Create one per
// driver and share it.
type Guard[C Capabilities] struct {
	d    Driver[C]
	caps CapabilityInfo
	cfg  guardConfig
	// watcher is the driver's optional wake-up interface (nil if none).
	watcher ReleaseWatcher
	// handoff is the driver's optional queued wake-up interface, used
	// instead of watcher (nil if none).
	handoff HandoffWatcher
	// keyed is the driver's optional keyed release and extension (nil if
	// none). Temporary: see keyedLockStore.
	keyed keyedLockStore
}

// New returns a Guard over driver d. C is inferred from d:
//
//	g := syncguard.New(memory.New()) // *Guard[memory.Capabilities]
func New[C Capabilities](d Driver[C], opts ...Option) *Guard[C] {
	g := &Guard[C]{cfg: guardConfig{releaseTimeout: DefaultReleaseTimeout}}
	for _, o := range opts {
		if o != nil {
			o(&g.cfg)
		}
	}
	if g.cfg.logger == nil {
		g.cfg.logger = slog.Default()
	}
	if g.cfg.random == nil {
		g.cfg.random = rand.Float64
	}
	if g.cfg.observer != nil {
		d = WithTelemetry(d, g.cfg.observer, g.cfg.telemetryOpts...)
		for _, opt := range g.cfg.telemetryOpts {
			if opt != nil {
				opt(&g.cfg.tel)
			}
		}
	}
	g.d = d
	g.caps = Describe(d.Capabilities())
	if w, ok := AsReleaseWatcher(d); ok {
		g.watcher = w
	}
	if h, ok := AsHandoffWatcher(d); ok {
		g.handoff = h
	}
	if k, ok := d.(keyedLockStore); ok {
		g.keyed = k
	}
	return g
}

// Driver returns the driver the Guard calls (decorated with telemetry when
// an observer is configured).
func (g *Guard[C]) Driver() Driver[C] { return g.d }

// Capabilities describes the driver's guarantees at run time.
func (g *Guard[C]) Capabilities() CapabilityInfo { return g.caps }

// TryAcquire makes one attempt to acquire key. If another owner holds it,
// it returns a nil lease and [ErrLocked]. Only TTL and AutoExtend take
// effect; retry options are validated but unused.
func (g *Guard[C]) TryAcquire(ctx context.Context, key string, opts ...AcquireOption) (*Lease[C], error) {
	cfg, nkey, err := g.prepare(ctx, key, false, opts)
	if err != nil {
		return nil, err
	}
	octx, start := g.startOp(ctx, EventAcquisition), time.Now()
	res, err := g.attempt(octx, nkey, cfg.ttl)
	if g.opObserving() {
		g.emitAcquisition(octx, nkey, start, res, err)
	}
	if err != nil {
		return nil, err
	}
	if !res.Acquired {
		return nil, ErrLocked
	}
	return g.newLease(ctx, nkey, res, cfg), nil
}

// Acquire acquires key, retrying while it is contended (by default up to 10
// retries with exponential backoff and equal jitter from 100ms, within 5s;
// see the AcquireOption functions). If the driver can signal releases, a
// waiter retries as soon as the key is released instead of sleeping the
// whole delay; setting up that subscription is bounded by the Timeout too.
//
// An attempt that fails because the backend is unreachable or slow
// (ServiceUnavailable or NetworkTimeout from the driver) is retried the
// same way, so a restart or failover shorter than the Timeout is ridden out
// ([RetryUnavailable] turns that off). Each attempt is bounded by the
// driver's call timeout.
//
// It returns a [Lease] the caller must release, typically with
// defer lease.Close(). When retries or the timeout run out it returns an
// AcquisitionTimeout *LockError that also matches [ErrLocked], or the last
// attempt's ServiceUnavailable or NetworkTimeout error if it failed so;
// when ctx ends it returns Aborted (cancelled) or NetworkTimeout (deadline).
func (g *Guard[C]) Acquire(ctx context.Context, key string, opts ...AcquireOption) (*Lease[C], error) {
	cfg, nkey, err := g.prepare(ctx, key, false, opts)
	if err != nil {
		return nil, err
	}
	res, err := g.observedAcquireLoop(ctx, nkey, cfg)
	if err != nil {
		return nil, err
	}
	return g.newLease(ctx, nkey, res, cfg), nil
}

// Do acquires key like [Guard.Acquire], runs fn while holding it and
// releases it on every path: return, error, panic (re-raised after the
// release) and cancellation of ctx. The release uses a context detached
// from ctx with its own deadline ([WithReleaseTimeout]); its failure goes to
// the release-error callback.
//
// fn receives the lease and a context that is cancelled if the lease is
// lost. The lease extends itself while fn runs unless AutoExtend(false) is
// given. Do returns fn's error unchanged; if fn succeeded but the lock was
// lost before it was released (it expired or was taken over), Do returns an
// error matching [ErrLockLost], because fn's work may have overlapped with
// another holder's.
func (g *Guard[C]) Do(ctx context.Context, key string, fn func(ctx context.Context, l *Lease[C]) error, opts ...AcquireOption) error {
	if fn == nil {
		return invalidArg("Do: fn must not be nil")
	}
	cfg, nkey, err := g.prepare(ctx, key, true, opts)
	if err != nil {
		return err
	}
	res, err := g.observedAcquireLoop(ctx, nkey, cfg)
	if err != nil {
		return err
	}
	l := g.newLease(ctx, nkey, res, cfg)
	finished := false
	defer func() {
		if !finished { // fn panicked
			g.releaseDetached(ctx, l)
		}
	}()
	fnErr := fn(l.Context(), l)
	finished = true
	ok, called, relErr := g.releaseDetached(ctx, l)
	if fnErr != nil {
		return fnErr
	}
	if cause := l.lostCause(); cause != nil {
		return cause
	}
	if called && relErr == nil && !ok { // not when fn released the lease itself
		return fmt.Errorf("%w: release found the lock gone", ErrLockLost)
	}
	return nil
}

// IsLocked reports whether a live lock holds key.
func (g *Guard[C]) IsLocked(ctx context.Context, key string) (bool, error) {
	if ctx == nil {
		return false, invalidArg("nil context")
	}
	return g.d.IsLocked(ctx, key)
}

// Lookup returns sanitized information on key's live lock, or nil.
// Diagnostic only.
func (g *Guard[C]) Lookup(ctx context.Context, key string) (*LockInfo, error) {
	if ctx == nil {
		return nil, invalidArg("nil context")
	}
	return g.d.LookupByKey(ctx, key)
}

// LookupID returns sanitized information on the live lock with lockID, or
// nil. Diagnostic only.
func (g *Guard[C]) LookupID(ctx context.Context, lockID string) (*LockInfo, error) {
	if ctx == nil {
		return nil, invalidArg("nil context")
	}
	return g.d.LookupByID(ctx, lockID)
}

// Owns reports whether lockID identifies a live lock. Diagnostic only: it
// can change right after it returns, so never gate a release on it.
func (g *Guard[C]) Owns(ctx context.Context, lockID string) (bool, error) {
	if ctx == nil {
		return false, invalidArg("nil context")
	}
	return Owns(ctx, g.d, lockID)
}

// FenceOf returns the fencing token of l, or 0 for a nil lease. It only
// compiles for drivers whose capability type declares fencing.
func FenceOf[C FencedCapabilities](l *Lease[C]) Fence {
	if l == nil {
		return 0
	}
	return l.fence
}

// The AutoExtend defaults, shared (never written) so that prepare does not
// allocate one per call.
var autoExtendTrue, autoExtendFalse = true, false

// prepare validates everything before any I/O: context, key, options, TTL.
func (g *Guard[C]) prepare(ctx context.Context, key string, autoExtendDefault bool, opts []AcquireOption) (acquireConfig, string, error) {
	cfg := acquireConfig{
		ttl:        DefaultTTL,
		maxRetries: DefaultMaxRetries,
		retryDelay: DefaultRetryDelay,
		timeout:    DefaultTimeout,
	}
	if ctx == nil {
		return cfg, "", invalidArg("nil context")
	}
	for _, o := range g.cfg.defaults {
		if o != nil {
			o(&cfg)
		}
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.autoExtend == nil {
		cfg.autoExtend = &autoExtendFalse
		if autoExtendDefault {
			cfg.autoExtend = &autoExtendTrue
		}
	}
	nkey, err := NormalizeKey(key)
	if err != nil {
		return cfg, "", err
	}
	if cfg.err != nil {
		return cfg, "", cfg.err
	}
	if _, err := TTLMillis(cfg.ttl); err != nil {
		return cfg, "", err
	}
	return cfg, nkey, nil
}

// attempt is one driver acquisition; non-LockErrors become Internal.
func (g *Guard[C]) attempt(ctx context.Context, key string, ttl time.Duration) (AcquireResult, error) {
	return g.attemptWith(ctx, key, ttl, nil)
}

// attemptWith is attempt through the waiter h when h is not nil.
func (g *Guard[C]) attemptWith(ctx context.Context, key string, ttl time.Duration, h *Handoff) (AcquireResult, error) {
	if err := CheckContext(ctx); err != nil {
		return AcquireResult{}, err
	}
	var (
		res AcquireResult
		err error
	)
	if h != nil {
		res, err = h.Acquire(ctx, ttl)
	} else {
		res, err = g.d.Acquire(ctx, key, ttl)
	}
	if err != nil {
		var le *LockError
		if errors.As(err, &le) {
			return res, err
		}
		return res, &LockError{Code: Internal, Message: "driver error: " + err.Error(), Key: key, Cause: err}
	}
	return res, nil
}

// observedAcquireLoop is acquireLoop reported to an OperationObserver as
// an acquisition.
func (g *Guard[C]) observedAcquireLoop(ctx context.Context, key string, cfg acquireConfig) (AcquireResult, error) {
	if !g.opObserving() {
		return g.acquireLoop(ctx, key, cfg)
	}
	octx, start := g.startOp(ctx, EventAcquisition), time.Now()
	res, err := g.acquireLoop(octx, key, cfg)
	g.emitAcquisition(octx, key, start, res, err)
	return res, err
}

// acquireLoop is contract §10's retry loop.
func (g *Guard[C]) acquireLoop(ctx context.Context, key string, cfg acquireConfig) (AcquireResult, error) {
	start := time.Now()
	var policy backoff.BackOff
	if cfg.policy != nil {
		policy = cfg.policy()
	}
	if policy == nil {
		policy = &retryPolicy{delay: cfg.retryDelay, exp: cfg.backoff == BackoffExponential, jitter: cfg.jitter, random: g.cfg.random}
	}
	var (
		wake      <-chan struct{}
		stop      func()
		watchGone bool     // the watcher closed its channel: plain backoff only
		hand      *Handoff // the queued waiter, with a HandoffWatcher
		timer     *time.Timer
		wctx      context.Context // ctx bounded by the Timeout, for subscribing
		// backendErr is the last attempt's error when it was a
		// retryable backend failure, nil when it was contention.
		backendErr error
	)
	defer func() {
		if stop != nil {
			stop()
		}
		if timer != nil {
			timer.Stop()
		}
	}()
	if g.handoff != nil && cfg.maxRetries > 0 {
		// This process waited for key recently: queue from the first
		// attempt, saving the plain one.
		if h := g.handoff.WarmHandoff(key); h != nil {
			hand, wake, stop = h, h.C, h.Stop
		}
	}
	for attempt := 1; ; attempt++ {
		if time.Since(start) >= cfg.timeout {
			return AcquireResult{}, giveUp(backendErr, key, "Timeout reached while acquiring lock")
		}
		res, err := g.attemptWith(ctx, key, cfg.ttl, hand)
		backendErr = nil
		if err != nil {
			if cfg.failFast || !retryableBackendError(ctx, err) {
				return res, err
			}
			// The backend is unreachable or did not answer in time:
			// wait and try again like a contended attempt, so that a
			// restart or failover shorter than the Timeout is ridden
			// out. If the retries run out, this error is returned.
			backendErr = err
		} else if res.Acquired {
			return res, nil
		}
		if attempt > cfg.maxRetries {
			return AcquireResult{}, giveUp(backendErr, key, "Failed to acquire lock after "+attempts(attempt))
		}
		d := policy.NextBackOff()
		if d == backoff.Stop {
			return AcquireResult{}, giveUp(backendErr, key, "Backoff policy stopped after "+attempts(attempt))
		}
		remaining := cfg.timeout - time.Since(start)
		if remaining <= 0 {
			return AcquireResult{}, giveUp(backendErr, key, "Timeout reached before next retry")
		}
		d = max(min(d, remaining), 0)
		if hand != nil && hand.Renew > 0 {
			d = min(d, hand.Renew)
		}
		if wake == nil && !watchGone && d > 0 && (g.handoff != nil || g.watcher != nil) {
			if wctx == nil {
				// Subscribing can block (a connection being set up, or
				// refused and retried); it must not hold the caller past
				// the Timeout, and the subscription is of no use after it.
				var cancel context.CancelFunc
				wctx, cancel = context.WithDeadline(ctx, start.Add(cfg.timeout))
				defer cancel()
			}
			switch {
			case g.handoff != nil:
				if h, err := g.handoff.WatchHandoff(wctx, key); err == nil && h != nil {
					hand, wake, stop = h, h.C, h.Stop
				}
			case g.watcher != nil:
				if ch, s, err := g.watcher.WatchRelease(wctx, key); err == nil {
					wake, stop = ch, s
				}
			}
			// Subscribing took time: sleep no longer than the Timeout.
			d = max(min(d, cfg.timeout-time.Since(start)), 0)
		}
		if d == 0 {
			if err := CheckContext(ctx); err != nil {
				return AcquireResult{}, err
			}
			continue
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return AcquireResult{}, ContextError(ctx.Err())
		case <-timer.C:
		case _, ok := <-wake:
			if !ok { // a last signal: fall back to plain backoff, never resubscribe
				// A queued waiter keeps attempting through hand: its
				// attempts still renew its place and claim a lock the
				// hand-off granted it.
				wake, watchGone = nil, true
			}
			if !timer.Stop() {
				<-timer.C
			}
		}
	}
}

// RetryUnavailable sets whether an acquisition retries attempts that fail
// because the backend is unreachable or slow (ServiceUnavailable or
// NetworkTimeout from the driver, not from ctx) as it retries a contended
// key: with the same backoff, MaxRetries and Timeout. Default true, so a
// waiter whose Timeout is longer than a backend restart or failover gets
// the lock afterwards; when the retries run out on such a failure, the
// acquisition returns that failure rather than AcquisitionTimeout. false
// restores failing on the first backend error.
//
// Each attempt is bounded by the driver's call timeout, so an acquisition
// returns within Timeout plus one call timeout.
func RetryUnavailable(on bool) AcquireOption {
	return func(c *acquireConfig) { c.failFast = !on }
}

// retryableBackendError reports an attempt's error that acquireLoop
// retries: the backend unreachable or too slow, while ctx is still live.
func retryableBackendError(ctx context.Context, err error) bool {
	return ctx.Err() == nil && IsUnavailable(err)
}

// giveUp is the error of an acquisition whose retries ran out: the last
// attempt's backend failure if it failed, else AcquisitionTimeout.
func giveUp(backendErr error, key, msg string) error {
	if backendErr != nil {
		return backendErr
	}
	return acquisitionTimeout(key, msg)
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

func acquisitionTimeout(key, msg string) *LockError {
	return &LockError{Code: AcquisitionTimeout, Message: msg, Key: key, Cause: ErrLocked}
}

// releaseDetached releases l on a context detached from ctx with the
// Guard's release timeout; errors go to the release-error callback.
func (g *Guard[C]) releaseDetached(ctx context.Context, l *Lease[C]) (ok, called bool, err error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.releaseTimeout)
	defer cancel()
	ok, called, err = l.release(rctx)
	if err != nil {
		g.reportReleaseError(err, l)
	}
	return ok, called, err
}

// reportReleaseError calls the release-error callback, swallowing panics.
func (g *Guard[C]) reportReleaseError(err error, l *Lease[C]) {
	info := ReleaseErrorInfo{LockID: l.lockID, Key: l.key, Source: SourceDisposal}
	defer func() { _ = recover() }()
	if g.cfg.onReleaseError != nil {
		g.cfg.onReleaseError(err, info)
		return
	}
	g.cfg.logger.Warn("Lock disposal failed",
		slog.String("error", err.Error()),
		slog.String("errorType", fmt.Sprintf("%T", err)),
		slog.String("code", CodeOf(err).String()),
		slog.String("source", info.Source))
}

// emitLost reports a lost lease to the observer, if any.
func (g *Guard[C]) emitLost(l *Lease[C], reason string) {
	keyHash := HashKey(l.key)
	g.cfg.logger.Warn("syncguard: lease lost", slog.String("keyHash", keyHash), slog.String("reason", reason))
	if g.cfg.observer == nil {
		return
	}
	ev := Event{Type: EventLost, Result: ResultFail, KeyHash: keyHash, LockIDHash: HashKey(l.lockID), Reason: reason}
	notifyCtx(g.cfg.observer, l.ctx, ev)
}
