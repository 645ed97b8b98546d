package httpmw

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
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
	logger     *slog.Logger
	v4Bits     int
	v6Bits     int
	err        error
}

// KeyFunc sets the function that names the client a request counts
// against: a user or API-token ID for per-user limits, [ClientIP] for
// per-address limits (the default). A request for which it returns "" is
// not limited. Any other string is a valid client name, whatever its
// length or bytes: one that is longer than 128 bytes, is not valid UTF-8,
// holds a control character or starts with "#h:" is counted under "#h:"
// and its SHA-256, so a client cannot escape its limit by sending odd header
// values, nor share another client's bucket.
func KeyFunc(fn func(*http.Request) string) RateLimitOption {
	return func(c *rateConfig) {
		if fn != nil {
			c.key = fn
		}
	}
}

// FailClosed sets what happens when the limiter's backend cannot be
// asked (errors with code ServiceUnavailable or NetworkTimeout). The
// default, fail-open (false), lets the request through without rate-limit
// headers: a limiter outage should not take the service down with it.
// Fail-closed (true) answers 503 Service Unavailable with Retry-After: 1
// instead, for endpoints where an unlimited burst is worse than an outage
// (login, costly operations). Any other error is answered with 503 either
// way: fail-open never depends on what the client sent. Every error goes
// to [OnRateLimitError].
func FailClosed(on bool) RateLimitOption {
	return func(c *rateConfig) { c.failClosed = on }
}

// RateLimitLogger sets the logger of the default error handler (default
// slog.Default()).
func RateLimitLogger(l *slog.Logger) RateLimitOption {
	return func(c *rateConfig) { c.logger = l }
}

// ClientIPPrefix makes the default key function count clients by network
// instead of by address: IPv4 addresses by their first v4Bits bits
// (default 32) and IPv6 addresses by their first v6Bits bits (default 64,
// the subnet a single customer usually gets). RateLimit fails with
// InvalidArgument for bits outside 8–32 (IPv4) or 16–128 (IPv6). It has no
// effect with a [KeyFunc].
func ClientIPPrefix(v4Bits, v6Bits int) RateLimitOption {
	return func(c *rateConfig) {
		if v4Bits < 8 || v4Bits > 32 || v6Bits < 16 || v6Bits > 128 {
			if c.err == nil {
				c.err = driver.NewError(driver.InvalidArgument,
					"httpmw.ClientIPPrefix: want 8-32 IPv4 bits and 16-128 IPv6 bits, got "+strconv.Itoa(v4Bits)+" and "+strconv.Itoa(v6Bits))
			}
			return
		}
		c.v4Bits, c.v6Bits = v4Bits, v6Bits
	}
}

// OnRateLimitError sets the handler of limiter failures (the default logs
// them at Warn level, without the key, to [RateLimitLogger]).
func OnRateLimitError(fn func(r *http.Request, err error)) RateLimitOption {
	return func(c *rateConfig) {
		if fn != nil {
			c.onError = fn
		}
	}
}

// ClientIP names the client of r by the address in r.RemoteAddr, with
// the prefix "ip:": an IPv4 address as itself (an IPv4-mapped IPv6 address
// such as ::ffff:1.2.3.4 counts as 1.2.3.4), an IPv6 address by its /64
// network ("ip:2001:db8:1:2::/64"), since one customer usually holds a
// whole /64 and could otherwise rotate addresses to escape its limit (see
// [ClientIPPrefix]). It does not trust forwarding headers; behind a proxy,
// use a KeyFunc that reads the address your proxy sets.
func ClientIP(r *http.Request) string {
	return clientIP(r.RemoteAddr, 32, 64)
}

func clientIP(remote string, v4Bits, v6Bits int) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	if host == "" {
		return ""
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "ip:" + host // not an IP address (a Unix socket, a test)
	}
	addr = addr.Unmap().WithZone("")
	bits := v6Bits
	if addr.Is4() {
		bits = v4Bits
	}
	if bits == addr.BitLen() {
		return "ip:" + addr.String()
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return "ip:" + addr.String()
	}
	return "ip:" + p.String()
}

// hashedPrefix marks a client name counted by its digest.
const hashedPrefix = "#h:"

// maxClientKey is the longest client name used as it is; longer names are
// hashed, leaving room for a limiter prefix within driver.MaxKeyBytes.
const maxClientKey = 128

// limiterKey maps any client name to a valid limiter key, one-to-one up to
// collisions of driver.HashedKey (the first 16 bytes of SHA-256).
func limiterKey(name string) string {
	if len(name) <= maxClientKey && utf8.ValidString(name) && !strings.HasPrefix(name, hashedPrefix) &&
		strings.IndexFunc(name, unicode.IsControl) < 0 {
		return name
	}
	return hashedPrefix + driver.HashedKey(name)
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
		return nil, driver.NewError(driver.InvalidArgument, "httpmw: RateLimit: limiter must not be nil")
	}
	cfg := rateConfig{v4Bits: 32, v6Bits: 64}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if cfg.key == nil {
		v4, v6 := cfg.v4Bits, cfg.v6Bits
		cfg.key = func(r *http.Request) string { return clientIP(r.RemoteAddr, v4, v6) }
	}
	if cfg.onError == nil {
		cfg.onError = warnTo(cfg.logger, "rate limiter")
	}
	fail := failure{failClosed: cfg.failClosed, onError: cfg.onError, title: "Rate limiter unavailable"}
	burst := strconv.Itoa(l.Limit().Burst)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := cfg.key(r)
			if key == "" {
				next.ServeHTTP(w, r)
				return
			}
			res, err := l.AllowN(r.Context(), limiterKey(key), 1)
			if err != nil {
				if !fail.handle(w, r, err) {
					next.ServeHTTP(w, r)
				}
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
