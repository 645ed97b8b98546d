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

// DistributedMutex is a mutual exclusion lock shared by every process that
// uses the same backend and key. It implements [sync.Locker], so it drops
// into code written for a sync.Mutex:
//
//	m, err := syncguard.NewMutex(g, "invoice:42")
//	...
//	m.Lock()
//	defer m.Unlock()
//
// Within one process the mutex is an ordinary local lock in front of the
// distributed one: goroutines queue on the local lock first, so a process
// holds at most one distributed acquisition of the key at a time and only
// the goroutine at the head of the queue talks to the backend.
//
// While held, the mutex extends its lease every TTL/3 (see [AutoExtend]). If
// it cannot — the lock expired behind its back, or the backend stayed
// unreachable until the lease ran out — [DistributedMutex.Lost] closes and
// [DistributedMutex.Context] is cancelled, so work under a lost lock can
// stop. The holder's fencing token is [FenceOf](m.Lease()), which only
// compiles when C declares fencing.
//
// Like sync.Mutex, a DistributedMutex is not tied to a goroutine: one
// goroutine may lock it and another unlock it. Unlock of an unlocked mutex
// panics. Every other failure of the error-less [DistributedMutex.Lock] and
// [DistributedMutex.Unlock] goes to the error handler ([OnMutexError]);
// [DistributedMutex.LockContext] and [DistributedMutex.UnlockContext] return
// their errors instead.
//
// A DistributedMutex is safe for concurrent use and must not be copied
// after first use. It holds no goroutine while unlocked.
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

// WithOnError sets the handler of failures that [DistributedMutex.Lock],
// [DistributedMutex.TryLock] and [DistributedMutex.Unlock] cannot return:
// backend errors while locking (Lock retries after each, so the handler may
// be called repeatedly; a handler that panics aborts the Lock), and lost or
// failed releases (errors matching [ErrLockLost], or the backend's error).
//
// The default handler logs the error's message, its code and the key's
// digest (never the raw key) at Error level with the Guard's logger
// ([WithLogger]). The handler must be safe for concurrent use.
func WithOnError(fn func(err error)) Option {
	return func(c *config) { c.set("WithOnError", ""); c.mutex.onError = fn }
}

// WithErrorBackoff sets how long [DistributedMutex.Lock] waits after a
// backend error before it tries again (default 1s). It must be positive.
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

// NewMutex returns an unlocked mutex for key on g's backend. It fails with
// InvalidArgument for an invalid key or invalid options; it does no I/O.
//
// Mutexes of the same key exclude each other across processes. Within one
// process, share one DistributedMutex per key between goroutines: two
// DistributedMutex values of one key in one process also exclude each
// other, but through the backend.
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

// Lock locks m, waiting as long as it takes. If the mutex is already held
// (by this process or another), Lock blocks until it is available; a
// release is noticed at once where the driver can signal it, otherwise
// within the backoff.
//
// Lock never returns without holding the lock. Backend failures go to the
// error handler ([OnMutexError]) and Lock retries after [MutexRetryDelay];
// to give up, use [DistributedMutex.LockContext] instead (or panic in the
// handler).
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

// LockContext locks m, waiting until the lock is held or ctx ends. It
// returns nil on success; otherwise the mutex is not held and the error is
// Aborted or NetworkTimeout when ctx ended (see [ContextError]) or the
// backend's error.
//
// ctx bounds the waiting only: once LockContext returned nil, the mutex
// stays held (and keeps extending itself) until Unlock, even if ctx ends.
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

// TryLock tries to lock m with one attempt and reports whether it
// succeeded. It does not wait for the local lock nor retry a contended key.
// A backend error goes to the error handler and TryLock reports false, as
// for a held mutex; use [DistributedMutex.TryLockContext] to tell the two
// apart.
func (m *DistributedMutex[C]) TryLock() bool {
	ok, err := m.TryLockContext(context.Background())
	if err != nil {
		m.report(err)
	}
	return ok
}

// TryLockContext is [DistributedMutex.TryLock] that returns its failure
// instead of reporting it. It returns:
//
//   - true, nil: m is now locked (until Unlock, whatever becomes of ctx);
//   - false, nil: m is held, by another goroutine of this process or by
//     another holder of the key;
//   - false and an error: TryLockContext could not find out — the backend's
//     error (ServiceUnavailable, NetworkTimeout, ...), Aborted or
//     NetworkTimeout when ctx ended (see [ContextError]), InvalidArgument
//     for a nil ctx. The error handler is not called.
//
// Like TryLock it makes one attempt and does not wait.
//
//	ok, err := m.TryLockContext(ctx)
//	switch {
//	case err != nil:
//		return fmt.Errorf("cannot tell whether the job runs elsewhere: %w", err)
//	case !ok:
//		log.Print("another instance is running the job")
//		return nil
//	}
//	defer m.Unlock()
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

// Unlock releases m. It panics if m is not locked, like sync.Mutex.
//
// The release uses its own context with the Guard's release timeout
// ([WithReleaseTimeout]). If the lease had been lost, or the release fails,
// the error goes to the error handler ([OnMutexError]); the mutex is
// unlocked locally either way, and an unreleased lock expires by its TTL.
func (m *DistributedMutex[C]) Unlock() {
	ctx, cancel := context.WithTimeout(context.Background(), m.g.cfg.releaseTimeout)
	defer cancel()
	if err := m.UnlockContext(ctx); err != nil {
		m.report(err)
	}
}

// UnlockContext releases m like [DistributedMutex.Unlock] but returns the
// failure instead of reporting it: an error matching [ErrLockLost] if the
// lease was lost before this release (the critical section may have
// overlapped with another holder), or the backend's error. The mutex is
// unlocked locally in every case. It panics if m is not locked.
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

// Lease returns the lease of the current holder, or nil while m is
// unlocked. Use [FenceOf](m.Lease()) for the fencing token; it compiles
// only when C declares fencing. Do not release the lease directly; call
// Unlock.
func (m *DistributedMutex[C]) Lease() *Lease[C] {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// Lost returns a channel that is closed when the current hold of the mutex
// is lost (see [Lease.Lost]). While m is unlocked it returns a closed
// channel. Read it after locking: each hold has its own channel.
func (m *DistributedMutex[C]) Lost() <-chan struct{} {
	return m.Lease().Lost()
}

// Context returns a context that is cancelled when the current hold ends:
// on Unlock, or when the lease is lost (then context.Cause matches
// [ErrLockLost]). While m is unlocked it returns a cancelled context.
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
