package syncguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// DistributedMutex is a [sync.Locker] that excludes every holder of its key on
// the same backend, across processes. Goroutines of one process queue on a
// local lock first, so only one of them talks to the backend.
//
// While held, the mutex extends its lease every TTL/3; if it cannot,
// [DistributedMutex.Lost] closes and [DistributedMutex.Context] is cancelled.
// Lock and Unlock report failures to the error handler ([WithOnError]);
// LockContext, TryLockContext and UnlockContext return them. Unlock of an
// unlocked mutex panics. A DistributedMutex is safe for concurrent use and
// must not be copied.
type DistributedMutex[C driver.Capabilities] struct {
	g       *Guard[C]
	key     string
	opts    []AcquireOption
	onError func(error)
	retry   time.Duration
	// roundPause separates waiting rounds, so that a round of a single
	// attempt (MaxRetries(0)) does not spin on the backend.
	roundPause time.Duration

	// local is the in-process lock: a one-slot semaphore, so that waiting
	// for it can honour a context.
	local chan struct{}

	mu     sync.Mutex // guards lease and cancel
	lease  *Lease[C]
	cancel context.CancelFunc // ends the lease's context on Unlock
}

type mutexConfig struct {
	onError func(error)
	retry   time.Duration
}

// WithOnError sets the handler of the failures that [DistributedMutex.Lock],
// TryLock and Unlock cannot return: backend errors while locking (Lock retries
// after each; a panic in fn aborts the Lock) and lost or failed releases. The
// default logs the message, code and key digest at Error with the Guard's
// logger. fn must be safe for concurrent use.
func WithOnError(fn func(err error)) Option {
	return func(c *config) { c.set("WithOnError", ""); c.mutex.onError = fn }
}

// WithErrorBackoff sets how long [DistributedMutex.Lock] waits after a backend
// error before it retries (default 1s; must be positive).
func WithErrorBackoff(d time.Duration) Option {
	return func(c *config) {
		problem := ""
		if d <= 0 {
			problem = fmt.Sprintf("the retry delay must be positive, got %v", d)
		}
		c.set("WithErrorBackoff", problem)
		c.mutex.retry = d
	}
}

// NewMutex returns an unlocked mutex for key on g's backend, without I/O. It
// takes [WithAcquireOptions] (AutoExtend is always on), [WithOnError] and
// [WithErrorBackoff], and fails with InvalidArgument for a nil g, an invalid
// key or invalid options. Share one mutex per key within a process.
func NewMutex[C driver.Capabilities](g *Guard[C], key string, opts ...Option) (*DistributedMutex[C], error) {
	if g == nil {
		return nil, invalidArg("NewMutex: guard must not be nil")
	}
	c := config{mutex: mutexConfig{retry: time.Second}}
	if err := applyOptions(&c, "NewMutex", []string{"WithAcquireOptions", "WithOnError", "WithErrorBackoff"}, opts); err != nil {
		return nil, err
	}
	cfg := c.mutex
	aopts := append(append([]AcquireOption(nil), c.acquire...), AutoExtend(true))
	// Validate key and options now, so that Lock never meets bad input.
	acfg, _, err := g.prepare(context.Background(), key, true, aopts)
	if err != nil {
		return nil, err
	}
	nkey, _ := driver.NormalizeKey(key)
	m := &DistributedMutex[C]{
		g:       g,
		key:     nkey,
		opts:    aopts,
		onError: cfg.onError,
		retry:   cfg.retry,
		local:   make(chan struct{}, 1),
		// Between waiting rounds: the base retry delay, at least 1ms.
		roundPause: max(acfg.retryDelay, time.Millisecond),
	}
	if m.onError == nil {
		m.onError = m.logError
	}
	return m, nil
}

// Key returns the normalised key of the mutex.
func (m *DistributedMutex[C]) Key() string { return m.key }

// Lock locks m, blocking until the mutex is available, however long it takes.
// Backend errors go to the error handler and Lock retries after
// [WithErrorBackoff]; use [DistributedMutex.LockContext] to give up.
func (m *DistributedMutex[C]) Lock() {
	ctx := context.Background()
	for {
		err := m.LockContext(ctx)
		if err == nil {
			return
		}
		m.report(err)
		time.Sleep(m.retry)
	}
}

// LockContext locks m, waiting until it is held or ctx ends. On failure m is
// not held and the error is Aborted or NetworkTimeout when ctx ended,
// InvalidArgument for a nil ctx, or the backend's error. ctx bounds only the
// wait: once locked, m stays held until Unlock.
func (m *DistributedMutex[C]) LockContext(ctx context.Context) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	select {
	case m.local <- struct{}{}:
	case <-ctx.Done():
		return driver.ContextError(ctx.Err())
	}
	for {
		lease, cancel, err := m.acquire(ctx, false)
		if err == nil {
			m.set(lease, cancel)
			return nil
		}
		if ctx.Err() == nil && (errors.Is(err, ErrLocked) || retryableRound(err)) {
			// One waiting round ended (contended, or a transient
			// backend failure that is not the caller's cancellation);
			// start another.
			if err = sleepCtx(ctx, m.roundPause); err == nil {
				continue
			}
		}
		<-m.local
		if ctx.Err() != nil {
			return driver.ContextError(ctx.Err())
		}
		return err
	}
}

// TryLock makes one attempt to lock m, without waiting, and reports whether it
// succeeded. A backend error goes to the error handler and yields false, as a
// held mutex does; [DistributedMutex.TryLockContext] tells them apart.
func (m *DistributedMutex[C]) TryLock() bool {
	ok, err := m.TryLockContext(context.Background())
	if err != nil {
		m.report(err)
	}
	return ok
}

// TryLockContext is TryLock returning its failure: true, nil when m is now
// locked (until Unlock, whatever becomes of ctx); false, nil when m is held,
// here or elsewhere; false and an error when it could not tell (the backend's
// error; Aborted or NetworkTimeout when ctx ended; InvalidArgument for a nil
// ctx). The error handler is not called.
func (m *DistributedMutex[C]) TryLockContext(ctx context.Context) (bool, error) {
	if ctx == nil {
		return false, invalidArg("nil context")
	}
	if err := ctx.Err(); err != nil {
		return false, driver.ContextError(err)
	}
	select {
	case m.local <- struct{}{}:
	default:
		return false, nil
	}
	lease, cancel, err := m.acquire(ctx, true)
	if err != nil {
		<-m.local
		if errors.Is(err, ErrLocked) {
			return false, nil
		}
		return false, err
	}
	m.set(lease, cancel)
	return true, nil
}

// Unlock releases m within the Guard's [WithReleaseTimeout]. A lost lease or a
// failed release goes to the error handler; m is unlocked locally either way
// (an unreleased lock expires by its TTL). It panics if m is not locked.
func (m *DistributedMutex[C]) Unlock() {
	ctx, cancel := context.WithTimeout(context.Background(), m.g.cfg.releaseTimeout)
	defer cancel()
	if err := m.UnlockContext(ctx); err != nil {
		m.report(err)
	}
}

// UnlockContext is Unlock returning its failure: an error matching
// [ErrLockLost] if the lease was lost before this release, or the backend's
// error. m is unlocked locally in every case. It panics if m is not locked.
func (m *DistributedMutex[C]) UnlockContext(ctx context.Context) error {
	m.mu.Lock()
	lease, cancel := m.lease, m.cancel
	m.lease, m.cancel = nil, nil
	m.mu.Unlock()
	if lease == nil {
		panic("syncguard: unlock of unlocked DistributedMutex")
	}
	defer func() { <-m.local }()
	defer cancel()
	if ctx == nil {
		ctx = context.Background()
	}
	ok, err := lease.Release(ctx)
	if err != nil {
		return err
	}
	if cause := lease.lostCause(); cause != nil {
		return cause
	}
	if !ok {
		return fmt.Errorf("%w: release found the lock gone", ErrLockLost)
	}
	return nil
}

// Lease returns the current holder's lease, or nil while m is unlocked;
// [FenceOf](m.Lease()) is the fencing token. Release it through Unlock only.
func (m *DistributedMutex[C]) Lease() *Lease[C] {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// Lost returns a channel closed when the current hold is lost (see
// [Lease.Lost]), or a closed channel while m is unlocked. Each hold has its
// own channel: read it after locking.
func (m *DistributedMutex[C]) Lost() <-chan struct{} {
	return m.Lease().Lost()
}

// Context returns a context cancelled when the current hold ends, by Unlock or
// by loss (then context.Cause matches [ErrLockLost]), or a cancelled context
// while m is unlocked.
func (m *DistributedMutex[C]) Context() context.Context {
	return m.Lease().Context()
}

// acquire makes one waiting round (or one attempt when try) on a context
// that ctx cancels only until the acquisition returned, so the lease and
// its heartbeat outlive ctx.
func (m *DistributedMutex[C]) acquire(ctx context.Context, try bool) (*Lease[C], context.CancelFunc, error) {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	var (
		lease *Lease[C]
		err   error
	)
	if try {
		lease, err = m.g.TryAcquire(actx, m.key, m.opts...)
	} else {
		lease, err = m.g.Acquire(actx, m.key, m.opts...)
	}
	if !stop() && err == nil {
		// ctx ended while we acquired: the lease's context is gone, so
		// give the lock back and report the cancellation.
		lease.Close()
		err = driver.ContextError(ctx.Err())
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return lease, cancel, nil
}

// retryableRound reports a failed waiting round that LockContext retries
// while its own context is live: a cancellation or timeout that did not
// come from the caller's context.
func retryableRound(err error) bool {
	switch driver.CodeOf(err) {
	case driver.Aborted, driver.NetworkTimeout:
		return true
	}
	return false
}

// sleepCtx sleeps d or until ctx ends (then it returns ContextError).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return driver.ContextError(ctx.Err())
	case <-t.C:
		return nil
	}
}

func (m *DistributedMutex[C]) set(l *Lease[C], cancel context.CancelFunc) {
	m.mu.Lock()
	m.lease, m.cancel = l, cancel
	m.mu.Unlock()
}

func (m *DistributedMutex[C]) report(err error) { m.onError(err) }

func (m *DistributedMutex[C]) logError(err error) {
	m.g.cfg.logger.Error("syncguard: mutex error",
		slog.String("error", err.Error()),
		slog.String("code", driver.CodeOf(err).String()),
		slog.String("keyHash", driver.HashKey(m.key)))
}
