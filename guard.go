package syncguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/syncguard/syncguard/driver"
)

// Guard locks keys through one driver: it validates input, retries
// acquisitions, hands out self-releasing leases, reports to observers and
// offers the features its capability type C allows. A Guard is safe for
// concurrent use; create one per driver and share it.
type Guard[C driver.Capabilities] struct {
	base driver.LockStore // the driver itself
	d    driver.LockStore // base, observed when an observer is configured
	info driver.Info
	cfg  guardConfig
	// acquire are the WithAcquireOptions defaults.
	acquire []AcquireOption
	// records is the driver's fenced-record store (nil if none).
	records driver.RecordStore
	// watcher is the driver's optional wake-up interface (nil if none).
	watcher driver.ReleaseWatcher
	// handoff is the driver's optional queued wake-up interface, used
	// instead of watcher (nil if none).
	handoff driver.HandoffWatcher
	// err is an option New could not take; every call returns it.
	err *LockError
}

// New returns a Guard over driver d, typed by d's capability type C. It takes
// [WithObserver], [WithRawEvents], [WithLogger], [WithOnReleaseError],
// [WithReleaseTimeout] and [WithAcquireOptions]; an invalid option is returned
// by every call of the Guard. Use [NewFenced] for code that should not name
// its driver.
func New[C driver.Capabilities](d driver.Driver[C], opts ...Option) *Guard[C] {
	return newGuard[C]("New", d, d.Capabilities(), opts)
}

// NewFenced is [New] for any driver with fencing, returning the one type
// *Guard[Fenced] whatever the driver, so that code runs unchanged on any of
// them and the driver can be chosen at run time.
func NewFenced[C Fenced](d driver.Driver[C], opts ...Option) *Guard[Fenced] {
	return newGuard[Fenced]("NewFenced", d, d.Capabilities(), opts)
}

func newGuard[C driver.Capabilities](ctor string, d driver.LockStore, caps driver.Capabilities, opts []Option) *Guard[C] {
	c := config{guard: guardConfig{releaseTimeout: defaultReleaseTimeout}}
	err := applyOptions(&c, ctor, guardOptions, opts)
	g := &Guard[C]{base: d, d: d, info: driver.Describe(caps), cfg: c.guard, acquire: c.acquire, err: err}
	if g.cfg.logger == nil {
		g.cfg.logger = slog.Default()
	}
	if g.cfg.random == nil {
		g.cfg.random = rand.Float64
	}
	g.records, _ = d.(driver.RecordStore)
	g.watcher, _ = d.(driver.ReleaseWatcher)
	g.handoff, _ = d.(driver.HandoffWatcher)
	if !nilObserver(g.cfg.observer) {
		g.observe()
	}
	return g
}

// Err returns the error of an invalid option given to [New] or
// [NewFenced] (every call of the Guard returns it too), or nil: check it
// where the Guard is built.
func (g *Guard[C]) Err() error {
	if g.err == nil {
		return nil
	}
	return g.err
}

// Capabilities describes the driver's guarantees at run time.
func (g *Guard[C]) Capabilities() driver.Info { return g.info }

// TryAcquire makes one attempt to acquire key and returns a nil lease and
// [ErrLocked] if another owner holds it. Of the AcquireOptions only TTL and
// AutoExtend apply; the others are validated.
func (g *Guard[C]) TryAcquire(ctx context.Context, key string, opts ...AcquireOption) (*Lease[C], error) {
	cfg, nkey, err := g.prepare(ctx, key, false, opts)
	if err != nil {
		return nil, err
	}
	octx, start := g.startOp(ctx, EventAcquisition), time.Now()
	octx = g.withOpDigests(octx, nkey, "")
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

// Acquire acquires key, retrying while it is held or the backend is
// unreachable (default: 10 retries, exponential backoff with equal jitter from
// 100ms, within a 5s Timeout; a release wakes a waiter early). Release the
// returned [Lease], typically with defer lease.Close().
//
// When the retries or the Timeout run out it returns an AcquisitionTimeout
// error matching [ErrLocked], or the last attempt's ServiceUnavailable or
// NetworkTimeout error ([RetryUnavailable]); when ctx ends, Aborted or
// NetworkTimeout; InvalidArgument for bad input.
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

// Do acquires key like [Guard.Acquire], runs fn and releases the lock on every
// path, panics included (re-raised after the release), within
// [WithReleaseTimeout] and detached from ctx; a failed release goes to
// [WithOnReleaseError]'s callback. The lease extends itself while fn runs
// unless AutoExtend(false); fn's ctx ends if it is lost. Do returns Acquire's
// error, fn's error unchanged, or, if fn succeeded but the lock was lost
// before its release, an error matching [ErrLockLost].
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
	nkey, err := g.check(ctx, key)
	if err != nil {
		return false, err
	}
	return g.d.IsLocked(ctx, nkey)
}

// LockInfo describes a live lock for diagnostics. Key and lock ID appear only
// as digests (the first 12 bytes of their SHA-256, in hex), so it can be
// logged safely; the times are Unix milliseconds.
type LockInfo struct {
	KeyHash      string
	LockIDHash   string
	Fence        Fence
	ExpiresAtMs  int64
	AcquiredAtMs int64
}

func hashedInfo(i *driver.LockInfo) *LockInfo {
	if i == nil {
		return nil
	}
	return &LockInfo{KeyHash: driver.HashKey(i.Key), LockIDHash: driver.HashKey(i.LockID), Fence: i.Fence, ExpiresAtMs: i.ExpiresAtMs, AcquiredAtMs: i.AcquiredAtMs}
}

// Lookup returns information on key's live lock, or nil. Diagnostic only.
func (g *Guard[C]) Lookup(ctx context.Context, key string) (*LockInfo, error) {
	nkey, err := g.check(ctx, key)
	if err != nil {
		return nil, err
	}
	info, err := g.d.LookupByKey(ctx, nkey)
	return hashedInfo(info), err
}

// LookupID returns information on the live lock with lockID, or nil.
// Diagnostic only; a driver without a lock-ID index returns InvalidArgument.
func (g *Guard[C]) LookupID(ctx context.Context, lockID string) (*LockInfo, error) {
	if err := g.checkID(ctx, lockID); err != nil {
		return nil, err
	}
	info, err := g.d.LookupByID(ctx, lockID)
	return hashedInfo(info), err
}

// Owns reports whether lockID identifies a live lock. Diagnostic only: the
// answer can change at once, so never gate a release on it.
func (g *Guard[C]) Owns(ctx context.Context, lockID string) (bool, error) {
	info, err := g.LookupID(ctx, lockID)
	return info != nil, err
}

// check validates a call's context and key before any I/O and returns the
// normalised key: the driver receives only valid input.
func (g *Guard[C]) check(ctx context.Context, key string) (string, error) {
	if g.err != nil {
		return "", g.err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return "", err
	}
	return driver.NormalizeKey(key)
}

// checkID is check for a lock ID.
func (g *Guard[C]) checkID(ctx context.Context, lockID string) error {
	if g.err != nil {
		return g.err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return err
	}
	return driver.ValidateLockID(lockID)
}

// FenceOf returns l's fencing token, or 0 for a nil lease. It compiles only
// for capability types with fencing.
func FenceOf[C Fenced](l *Lease[C]) Fence {
	if l == nil {
		return 0
	}
	return l.fence
}

// The AutoExtend defaults, shared (never written) so that prepare does not
// allocate one per call.
var autoExtendTrue, autoExtendFalse = true, false

// acquireConfigs hold the configuration prepare builds: the options are
// functions, so the one they write to escapes to the heap, once per call
// without the pool.
var acquireConfigs = sync.Pool{New: func() any { return new(acquireConfig) }}

// prepare validates everything before any I/O: context, key, options, TTL.
func (g *Guard[C]) prepare(ctx context.Context, key string, autoExtendDefault bool, opts []AcquireOption) (acquireConfig, string, error) {
	cfg := acquireConfig{
		ttl:        driver.DefaultTTL,
		maxRetries: defaultMaxRetries,
		retryDelay: defaultRetryDelay,
		timeout:    defaultTimeout,
	}
	if g.err != nil {
		return cfg, "", g.err
	}
	if ctx == nil {
		return cfg, "", invalidArg("nil context")
	}
	if len(g.acquire)+len(opts) > 0 {
		p := acquireConfigs.Get().(*acquireConfig)
		*p = cfg
		for _, o := range g.acquire {
			if o != nil {
				o(p)
			}
		}
		for _, o := range opts {
			if o != nil {
				o(p)
			}
		}
		cfg = *p
		*p = acquireConfig{} // keep no references in the pool
		acquireConfigs.Put(p)
	}
	if cfg.autoExtend == nil {
		cfg.autoExtend = &autoExtendFalse
		if autoExtendDefault {
			cfg.autoExtend = &autoExtendTrue
		}
	}
	nkey, err := driver.NormalizeKey(key)
	if err != nil {
		return cfg, "", err
	}
	if cfg.err != nil {
		return cfg, "", cfg.err
	}
	if _, err := driver.TTLMillis(cfg.ttl); err != nil {
		return cfg, "", err
	}
	return cfg, nkey, nil
}

// attempt is one driver acquisition; non-LockErrors become Internal.
func (g *Guard[C]) attempt(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	return g.attemptWith(ctx, key, ttl, nil)
}

// attemptWith is attempt through the waiter h when h is not nil.
func (g *Guard[C]) attemptWith(ctx context.Context, key string, ttl time.Duration, h *driver.Handoff) (driver.AcquireResult, error) {
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	var (
		res driver.AcquireResult
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
		return res, &LockError{Code: driver.Internal, Message: "driver error: " + err.Error(), Key: key, Cause: err}
	}
	return res, nil
}

// observedAcquireLoop is acquireLoop reported to an OperationObserver as
// an acquisition.
func (g *Guard[C]) observedAcquireLoop(ctx context.Context, key string, cfg acquireConfig) (driver.AcquireResult, error) {
	if !g.opObserving() {
		return g.acquireLoop(ctx, key, cfg, time.Now())
	}
	octx, start := g.startOp(ctx, EventAcquisition), time.Now()
	octx = g.withOpDigests(octx, key, "")
	res, err := g.acquireLoop(octx, key, cfg, start)
	g.emitAcquisition(octx, key, start, res, err)
	return res, err
}

// acquireLoop is the retry loop of docs/contract.md#what-the-application-layer-does,
// timed from start.
func (g *Guard[C]) acquireLoop(ctx context.Context, key string, cfg acquireConfig, start time.Time) (driver.AcquireResult, error) {
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
		watchGone bool            // the watcher closed its channel: plain backoff only
		hand      *driver.Handoff // the queued waiter, with a HandoffWatcher
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
			return driver.AcquireResult{}, giveUp(backendErr, key, "timeout reached while acquiring lock")
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
			return driver.AcquireResult{}, giveUp(backendErr, key, "failed to acquire lock after "+attempts(attempt))
		}
		d := policy.NextBackOff()
		if d == backoff.Stop {
			return driver.AcquireResult{}, giveUp(backendErr, key, "backoff policy stopped after "+attempts(attempt))
		}
		remaining := cfg.timeout - time.Since(start)
		if remaining <= 0 {
			return driver.AcquireResult{}, giveUp(backendErr, key, "timeout reached before next retry")
		}
		d = max(min(d, remaining), 0)
		if hand != nil && hand.Renew > 0 {
			d = min(d, hand.Renew)
		}
		// Subscribe only after contention: after a backend failure the
		// subscription would dial the same unreachable server and could
		// take the rest of the Timeout, in place of the retries.
		if wake == nil && !watchGone && d > 0 && backendErr == nil && (g.handoff != nil || g.watcher != nil) {
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
			if err := driver.CheckContext(ctx); err != nil {
				return driver.AcquireResult{}, err
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
			return driver.AcquireResult{}, driver.ContextError(ctx.Err())
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

// RetryUnavailable sets whether attempts that fail with ServiceUnavailable or
// NetworkTimeout from the driver are retried like contended ones, within
// MaxRetries and Timeout (default true; false fails on the first such error).
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
	return &LockError{Code: driver.AcquisitionTimeout, Message: msg, Key: key, Cause: ErrLocked}
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
	defer func() { _ = recover() }()
	if g.cfg.onReleaseError != nil {
		g.cfg.onReleaseError(err, l.key, l.lockID)
		return
	}
	g.cfg.logger.Warn("lock disposal failed",
		slog.String("error", err.Error()),
		slog.String("errorType", fmt.Sprintf("%T", err)),
		slog.String("code", driver.CodeOf(err).String()),
		slog.String("source", "disposal"))
}

// emitLost reports a lost lease to the observer, if any.
func (g *Guard[C]) emitLost(l *Lease[C], reason string) {
	keyHash := driver.HashKey(l.key)
	g.cfg.logger.Warn("syncguard: lease lost", slog.String("keyHash", keyHash), slog.String("reason", reason))
	if g.cfg.observer == nil {
		return
	}
	ctx := l.Context()
	ev := Event{Type: EventLost, Result: ResultFail, Reason: reason}
	if needsDigests(g.cfg.observer, ctx) {
		ev.KeyHash, ev.LockIDHash = keyHash, driver.HashKey(l.lockID)
	}
	notifyCtx(g.cfg.observer, ctx, ev)
}
