package httpmw

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/semaphore"
)

// ConcurrencyOption configures [ConcurrencyLimit].
type ConcurrencyOption func(*concConfig)

type concConfig struct {
	key        func(*http.Request) string
	status     int
	retryAfter time.Duration
	wait       time.Duration
	failClosed bool
	onError    func(*http.Request, error)
	err        error
}

// ConcurrencyKeyFunc sets the function that names what a request counts
// against (default [ClientIP]): a tenant for "N exports per tenant", a
// constant for a global limit. A request for which it returns "" is not
// limited; other names are mapped to valid keys as for [KeyFunc].
func ConcurrencyKeyFunc(fn func(*http.Request) string) ConcurrencyOption {
	return func(c *concConfig) {
		if fn != nil {
			c.key = fn
		}
	}
}

// ConcurrencyRefusal sets the answer to a request that finds every permit
// held: status 503 Service Unavailable (the default) or 429 Too Many
// Requests, with Retry-After rounded up to whole seconds (default 1s).
// Other statuses and a retryAfter under a second are InvalidArgument.
func ConcurrencyRefusal(status int, retryAfter time.Duration) ConcurrencyOption {
	return func(c *concConfig) {
		if (status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests) || retryAfter < time.Second {
			if c.err == nil {
				c.err = driver.NewError(driver.InvalidArgument, "httpmw.ConcurrencyRefusal: want status 503 or 429 and a Retry-After of at least 1s, got "+strconv.Itoa(status)+" and "+retryAfter.String())
			}
			return
		}
		c.status, c.retryAfter = status, retryAfter
	}
}

// ConcurrencyWait sets how long a request waits for a permit before it is
// refused (default 0: refused at once). Negative is InvalidArgument.
func ConcurrencyWait(d time.Duration) ConcurrencyOption {
	return func(c *concConfig) {
		if d < 0 {
			if c.err == nil {
				c.err = driver.NewError(driver.InvalidArgument, "httpmw.ConcurrencyWait: the wait must not be negative, got "+d.String())
			}
			return
		}
		c.wait = d
	}
}

// ConcurrencyFailClosed sets what happens when the semaphore's backend
// cannot be asked: pass the request (false, the default) or answer 503
// with Retry-After: 1 (true), as [FailClosed] does for rate limits.
func ConcurrencyFailClosed(on bool) ConcurrencyOption {
	return func(c *concConfig) { c.failClosed = on }
}

// OnConcurrencyError sets the handler of semaphore failures (default: a
// Warn log to slog.Default(), without the key).
func OnConcurrencyError(fn func(r *http.Request, err error)) ConcurrencyOption {
	return func(c *concConfig) {
		if fn != nil {
			c.onError = fn
		}
	}
}

// ConcurrencyLimit returns a middleware that lets at most s.Permits()
// requests of one key run at a time, across every process that shares the
// backend. Each request holds a permit of s while the handler runs (the
// permit extends itself, so a long request keeps it; a crashed process's
// permits come back after their TTL) and releases it when the handler
// returns. A request that finds every permit held is refused
// ([ConcurrencyRefusal]). It fails with InvalidArgument for a nil
// semaphore or an invalid option.
func ConcurrencyLimit[C syncguard.Fenced](s *semaphore.Semaphore[C], opts ...ConcurrencyOption) (func(http.Handler) http.Handler, error) {
	if s == nil {
		return nil, driver.NewError(driver.InvalidArgument, "httpmw: ConcurrencyLimit: semaphore must not be nil")
	}
	cfg := concConfig{key: ClientIP, status: http.StatusServiceUnavailable, retryAfter: time.Second}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if cfg.onError == nil {
		cfg.onError = warnTo(nil, "concurrency limiter")
	}
	fail := failure{failClosed: cfg.failClosed, onError: cfg.onError, title: "Concurrency limiter unavailable"}
	retryAfter := strconv.FormatInt(ceilSeconds(cfg.retryAfter), 10)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := cfg.key(r)
			if key == "" {
				next.ServeHTTP(w, r)
				return
			}
			var l *syncguard.Lease[C]
			var err error
			if cfg.wait > 0 {
				l, err = s.Acquire(r.Context(), limiterKey(key), syncguard.AutoExtend(true), syncguard.Timeout(cfg.wait))
			} else {
				l, err = s.TryAcquire(r.Context(), limiterKey(key), syncguard.AutoExtend(true))
			}
			switch {
			case err == nil:
				defer l.Close()
			case errors.Is(err, syncguard.ErrLocked):
				w.Header().Set(HeaderRetryAfter, retryAfter)
				problem(w, cfg.status, "Too many concurrent requests", "")
				return
			case fail.handle(w, r, err):
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}
