package httpmw

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/syncguard/syncguard"
)

// Rate-limit response headers (draft-ietf-httpapi-ratelimit-headers) and
// Retry-After (RFC 9110).
const (
	HeaderRateLimitLimit     = "RateLimit-Limit"
	HeaderRateLimitRemaining = "RateLimit-Remaining"
	HeaderRateLimitReset     = "RateLimit-Reset"
	HeaderRetryAfter         = "Retry-After"
)

// RateLimitOption configures [RateLimit].
type RateLimitOption func(*rateConfig)

type rateConfig struct {
	key        func(*http.Request) string
	failClosed bool
	onError    func(*http.Request, error)
}

// KeyFunc sets the function that names the client a request counts
// against: a user or API-token ID for per-user limits, [ClientIP] for
// per-address limits (the default). A request for which it returns "" is
// not limited.
func KeyFunc(fn func(*http.Request) string) RateLimitOption {
	return func(c *rateConfig) {
		if fn != nil {
			c.key = fn
		}
	}
}

// FailClosed sets what happens when the limiter's backend cannot be
// asked. The default, fail-open (false), lets the request through without
// rate-limit headers: a limiter outage should not take the service down
// with it. Fail-closed (true) answers 503 Service Unavailable with
// Retry-After: 1 instead, for endpoints where an unlimited burst is worse
// than an outage (login, costly operations). Either way the error goes to
// [OnRateLimitError].
func FailClosed(on bool) RateLimitOption {
	return func(c *rateConfig) { c.failClosed = on }
}

// OnRateLimitError sets the handler of backend failures (the default logs
// them with slog.Default at Warn level, without the key).
func OnRateLimitError(fn func(r *http.Request, err error)) RateLimitOption {
	return func(c *rateConfig) {
		if fn != nil {
			c.onError = fn
		}
	}
}

// ClientIP returns the host part of r.RemoteAddr, prefixed with "ip:". It
// does not trust forwarding headers; behind a proxy, use a KeyFunc that
// reads the address your proxy sets.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if host == "" {
		return ""
	}
	return "ip:" + host
}

// RateLimit returns a middleware that counts each request against l under
// the key of [KeyFunc] (default: the client IP) and refuses requests over
// the limit with 429 Too Many Requests.
//
// Every limited response, allowed or refused, carries
//
//	RateLimit-Limit: <Burst>        requests available at full capacity
//	RateLimit-Remaining: <n>        requests available now
//	RateLimit-Reset: <seconds>      until full capacity, rounded up
//
// and a 429 response also carries Retry-After: <seconds until one request
// is allowed>, rounded up (at least 1). When the backend fails, the request
// passes (fail-open, the default) or gets 503 ([FailClosed]). RateLimit
// fails with InvalidArgument for a nil limiter.
func RateLimit(l *syncguard.RateLimiter, opts ...RateLimitOption) (func(http.Handler) http.Handler, error) {
	if l == nil {
		return nil, syncguard.NewError(syncguard.InvalidArgument, "httpmw: RateLimit: limiter must not be nil")
	}
	cfg := rateConfig{key: ClientIP}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.onError == nil {
		cfg.onError = func(r *http.Request, err error) {
			slog.Default().Warn("httpmw: rate limiter backend error",
				slog.String("error", err.Error()),
				slog.String("code", syncguard.CodeOf(err).String()))
		}
	}
	burst := strconv.Itoa(l.Limit().Burst)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := cfg.key(r)
			if key == "" {
				next.ServeHTTP(w, r)
				return
			}
			res, err := l.AllowN(r.Context(), key, 1)
			if err != nil {
				cfg.onError(r, err)
				if cfg.failClosed {
					w.Header().Set(HeaderRetryAfter, "1")
					problem(w, http.StatusServiceUnavailable, "Rate limiter unavailable", "")
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Set(HeaderRateLimitLimit, burst)
			h.Set(HeaderRateLimitRemaining, strconv.Itoa(res.Remaining))
			h.Set(HeaderRateLimitReset, strconv.FormatInt(ceilSeconds(res.ResetAfter), 10))
			if res.Allowed == 0 {
				h.Set(HeaderRetryAfter, strconv.FormatInt(max(ceilSeconds(res.RetryAfter), 1), 10))
				problem(w, http.StatusTooManyRequests, "Too many requests", "")
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
