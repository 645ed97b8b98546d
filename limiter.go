package syncguard

import (
	"context"
	"strconv"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// RateLimiter limits how often something may happen per key across every
// process sharing the backend. The driver applies GCRA atomically on its own
// clock (so client clock skew does not matter), deciding like a token bucket
// of Burst tokens refilled at Limit per Period; refused requests change
// nothing. A RateLimiter is safe for concurrent use and keeps no local state.
type RateLimiter struct {
	store  driver.RateStore
	limit  RateLimit
	prefix string
}

// NewRateLimiter returns a limiter enforcing limit through store (every driver
// of this module is one), without I/O. It takes [WithPrefix], and
// [WithObserver] and [WithRawEvents] to report each decision as an
// [EventRate]. It fails with InvalidArgument for a nil store, an invalid limit
// or invalid options.
func NewRateLimiter(store driver.RateStore, limit RateLimit, opts ...Option) (*RateLimiter, error) {
	if store == nil {
		return nil, invalidArg("NewRateLimiter: store must not be nil")
	}
	if err := driver.ValidateRateLimit(limit, 1); err != nil {
		return nil, err
	}
	c := config{}
	if err := applyOptions(&c, "NewRateLimiter", []string{"WithPrefix", "WithObserver", "WithRawEvents"}, opts); err != nil {
		return nil, err
	}
	r := &RateLimiter{store: store, limit: limit}
	if !nilObserver(c.guard.observer) {
		r.store = newObserved(nil, store, c.guard.observer, c.guard.raw)
	}
	if c.prefix != nil {
		r.prefix = *c.prefix
	}
	return r, nil
}

// Limit returns the limiter's limit.
func (l *RateLimiter) Limit() RateLimit { return l.limit }

// Allow reports whether one event for key may happen now, and accounts it if
// so.
func (l *RateLimiter) Allow(ctx context.Context, key string) (bool, error) {
	res, err := l.AllowN(ctx, key, 1)
	return res.Allowed > 0, err
}

// AllowN accounts n events for key if all may happen now, and otherwise none;
// the result tells how many remain and, when refused, the RetryAfter. n = 0
// only inspects. It fails with InvalidArgument for an invalid key or n outside
// [0, Burst], since a larger n could never be allowed.
func (l *RateLimiter) AllowN(ctx context.Context, key string, n int) (RateResult, error) {
	if ctx == nil {
		return RateResult{}, invalidArg("nil context")
	}
	k, err := l.key(key)
	if err != nil {
		return RateResult{}, err
	}
	if n > l.limit.Burst {
		return RateResult{}, &LockError{Code: driver.InvalidArgument, Key: k,
			Message: "RateLimiter.AllowN: n = " + strconv.Itoa(n) + " exceeds the burst (" + strconv.Itoa(l.limit.Burst) +
				"): such a request can never be allowed"}
	}
	return l.store.AllowN(ctx, k, l.limit, n)
}

// Wait is WaitN with n = 1.
func (l *RateLimiter) Wait(ctx context.Context, key string) error {
	return l.WaitN(ctx, key, 1)
}

// WaitN blocks until n events for key may happen, then accounts them, sleeping
// the RetryAfter the backend reports between attempts. It returns
// InvalidArgument if n is not in [1, Burst]; Aborted or NetworkTimeout when
// ctx ends; RateLimited at once if ctx's deadline comes before the events
// could be granted; or the backend's error.
func (l *RateLimiter) WaitN(ctx context.Context, key string, n int) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	if n < 1 || n > l.limit.Burst {
		return invalidArg("rate: WaitN n must be between 1 and the burst (" + strconv.Itoa(l.limit.Burst) + ")")
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		res, err := l.AllowN(ctx, key, n)
		if err != nil {
			return err
		}
		if res.Allowed > 0 {
			return nil
		}
		d := max(res.RetryAfter, time.Millisecond)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return &LockError{Code: driver.RateLimited, Message: "rate: Wait would exceed the context deadline", Key: key}
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return driver.ContextError(ctx.Err())
		case <-timer.C:
		}
	}
}

// Reset forgets key's state, so it may burst again at once.
func (l *RateLimiter) Reset(ctx context.Context, key string) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	k, err := l.key(key)
	if err != nil {
		return err
	}
	return l.store.ResetRate(ctx, k)
}

func (l *RateLimiter) key(key string) (string, error) {
	return prefixedName(l.prefix, key)
}
