package syncguard

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/syncguard/syncguard/driver"
)

// Option configures [New] or a primitive's constructor. Each constructor lists
// the options it takes; any other is an InvalidArgument error naming the
// option (for New, returned by every call of the Guard).
type Option func(*config)

// config is what options set; each constructor reads its part.
type config struct {
	guard   guardConfig
	mutex   mutexConfig
	once    onceConfig
	fenced  fencedConfig
	acquire []AcquireOption // WithAcquireOptions
	prefix  *string         // WithPrefix
	ret     *time.Duration  // WithRetention
	used    []string        // option names, in order
	err     *LockError      // the first invalid option value
}

// set records that option was given and, when problem is not "", that its
// value is invalid.
func (c *config) set(option, problem string) {
	c.used = append(c.used, option)
	if problem != "" && c.err == nil {
		c.err = invalidArg("syncguard." + option + ": " + problem)
	}
}

// applyOptions runs opts into c and checks that each is one of allowed,
// the options constructor ctor takes.
func applyOptions(c *config, ctor string, allowed []string, opts []Option) *LockError {
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	for _, name := range c.used {
		if !slices.Contains(allowed, name) {
			return invalidArg(fmt.Sprintf("syncguard.%s does not apply to syncguard.%s", name, ctor))
		}
	}
	return c.err
}

type guardConfig struct {
	observer       Observer
	raw            func(Event) bool
	onReleaseError func(err error, key, lockID string)
	releaseTimeout time.Duration
	logger         *slog.Logger
	random         func() float64 // tests only
}

// guardOptions are the options New takes.
var guardOptions = []string{"WithObserver", "WithRawEvents", "WithOnReleaseError", "WithReleaseTimeout", "WithLogger", "WithAcquireOptions", "withRandom"}

// WithObserver sends o an [Event] for every backend call of the Guard, its
// leases and primitives, and for whole operations ([OperationObserver]). Keys
// and lock IDs are hashed unless [WithRawEvents] says otherwise; observer
// panics are recovered.
func WithObserver(o Observer) Option {
	return func(c *config) { c.set("WithObserver", ""); c.guard.observer = o }
}

// WithRawEvents adds the raw normalised key and lock ID to each event for
// which f, given the hashed event, returns true (default: never; a panic in f
// means false). A raw lock ID lets its reader release the lock.
func WithRawEvents(f func(Event) bool) Option {
	return func(c *config) { c.set("WithRawEvents", ""); c.guard.raw = f }
}

// WithOnReleaseError sets the callback of releases that fail in [Lease.Close]
// or [Guard.Do], where no caller gets the error; key is the normalised key.
// The default logs the error's message and type (never key or lock ID) at
// Warn. Panics in fn are recovered.
func WithOnReleaseError(fn func(err error, key, lockID string)) Option {
	return func(c *config) { c.set("WithOnReleaseError", ""); c.guard.onReleaseError = fn }
}

// WithReleaseTimeout sets the deadline of the releases of [Lease.Close] and
// [Guard.Do], which run detached from the caller's context (default 5s;
// d <= 0 is invalid).
func WithReleaseTimeout(d time.Duration) Option {
	return func(c *config) {
		problem := ""
		if d <= 0 {
			problem = "the release timeout must be positive, got " + d.String()
		}
		c.set("WithReleaseTimeout", problem)
		if d > 0 {
			c.guard.releaseTimeout = d
		}
	}
}

// WithLogger sets the logger of the default release-error and mutex error
// handlers and of lost-lease reports (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.set("WithLogger", ""); c.guard.logger = l }
}

// WithAcquireOptions sets acquisition options: for [New], defaults applied
// before each call's options; for [NewMutex] and [NewOncePerKey], the options
// of every acquisition they make.
func WithAcquireOptions(opts ...AcquireOption) Option {
	return func(c *config) { c.set("WithAcquireOptions", ""); c.acquire = append(c.acquire, opts...) }
}

// WithPrefix sets the name prefix of [NewOncePerKey] (default "once:"),
// [NewRateLimiter] (default none; limiters sharing a key share its state) and
// [NewFencedWriter]'s default store (default "fenced:"). It must be valid
// UTF-8 of at most 489 bytes; every valid key still works under it.
func WithPrefix(p string) Option {
	return func(c *config) {
		problem := ""
		if err := checkPrefix("WithPrefix", p); err != nil {
			problem = err.Message[len("syncguard.WithPrefix: "):]
		}
		c.set("WithPrefix", problem)
		c.prefix = &p
	}
}

// WithRetention sets how long stored outcomes live: for [NewOncePerKey], how
// long a result is replayed (default 24h; must be positive); for
// [NewFencedWriter]'s default store, how long a value lives after its last
// write (default 0, for ever; an expired value no longer refuses older
// fences). Whole milliseconds, at most 100 years.
func WithRetention(d time.Duration) Option {
	return func(c *config) {
		problem := ""
		if _, err := driver.RecordTTLMillis(d); err != nil {
			problem = fmt.Sprintf("the retention must be 0 or a positive whole number of milliseconds, at most 100 years, got %v", d)
		}
		c.set("WithRetention", problem)
		c.ret = &d
	}
}

// withRandom replaces the jitter source (tests).
func withRandom(f func() float64) Option {
	return func(c *config) { c.set("withRandom", ""); c.guard.random = f }
}

// AcquireOption configures one acquisition of [Guard.Acquire],
// [Guard.TryAcquire] or [Guard.Do].
type AcquireOption func(*acquireConfig)

// BackoffStrategy selects how the retry delay grows.
type BackoffStrategy int

// Backoff strategies.
const (
	BackoffExponential BackoffStrategy = iota // RetryDelay·2^(attempt−1), the default
	BackoffFixed                              // RetryDelay every time
)

// JitterStrategy selects how the retry delay is randomised.
type JitterStrategy int

// Jitter strategies, applied to the backoff delay d.
const (
	JitterEqual JitterStrategy = iota // d/2 + U·d/2, U uniform in [0,1), the default
	JitterFull                        // U·d
	JitterNone                        // d
)

// Acquisition defaults (docs/contract.md#what-the-application-layer-does).
const (
	defaultMaxRetries = 10
	defaultRetryDelay = 100 * time.Millisecond
	defaultTimeout    = 5 * time.Second
	// defaultReleaseTimeout bounds the detached release of Guard.Do.
	defaultReleaseTimeout = 5 * time.Second
)

type acquireConfig struct {
	ttl        time.Duration
	maxRetries int
	retryDelay time.Duration
	backoff    BackoffStrategy
	jitter     JitterStrategy
	timeout    time.Duration
	policy     func() backoff.BackOff
	autoExtend *bool
	failFast   bool // RetryUnavailable(false)
	err        *LockError
}

// fail records the first invalid option: an InvalidArgument naming the Go
// option (see optionError).
func (c *acquireConfig) fail(option, format string, args ...any) {
	if c.err == nil {
		c.err = optionError(option, format, args...)
	}
}

// optionError is the InvalidArgument of an invalid option value: it names
// the option as the caller wrote it ("syncguard.TTL: ...") and shows the
// value it got, in Go syntax.
func optionError(option, format string, args ...any) *LockError {
	return invalidArg("syncguard." + option + ": " + fmt.Sprintf(format, args...))
}

// TTL sets the lock's time to live (default 30s): a positive whole number of
// milliseconds, at most 100 years.
func TTL(d time.Duration) AcquireOption {
	return func(c *acquireConfig) {
		if msg := ttlProblem(d); msg != "" {
			c.fail("TTL", "%s, got %v", msg, d)
			return
		}
		c.ttl = d
	}
}

// maxTTL is the longest lock TTL (driver.TTLMillis's bound).
const maxTTL = 100 * 365 * 24 * time.Hour

// ttlProblem describes what makes d an invalid lock TTL, or returns "".
func ttlProblem(d time.Duration) string {
	if d <= 0 || d%time.Millisecond != 0 {
		return "the lock TTL must be a positive whole number of milliseconds"
	}
	if d > maxTTL {
		return "the lock TTL must be at most 100 years"
	}
	return ""
}

// MaxRetries sets how often an acquisition is retried (default 10, so at most
// 11 attempts). n must not be negative.
func MaxRetries(n int) AcquireOption {
	return func(c *acquireConfig) {
		if n < 0 {
			c.fail("MaxRetries", "the number of retries must not be negative, got %d", n)
			return
		}
		c.maxRetries = n
	}
}

// RetryDelay sets the base retry delay (default 100ms; 0 retries at once;
// negative is invalid).
func RetryDelay(d time.Duration) AcquireOption {
	return func(c *acquireConfig) {
		if d < 0 {
			c.fail("RetryDelay", "the retry delay must not be negative, got %v", d)
			return
		}
		c.retryDelay = d
	}
}

// Backoff selects the backoff strategy (default BackoffExponential).
func Backoff(s BackoffStrategy) AcquireOption {
	return func(c *acquireConfig) {
		if s != BackoffExponential && s != BackoffFixed {
			c.fail("Backoff", "unknown backoff strategy %d (want BackoffExponential or BackoffFixed)", int(s))
			return
		}
		c.backoff = s
	}
}

// Jitter selects the jitter strategy (default JitterEqual).
func Jitter(s JitterStrategy) AcquireOption {
	return func(c *acquireConfig) {
		if s < JitterEqual || s > JitterNone {
			c.fail("Jitter", "unknown jitter strategy %d (want JitterEqual, JitterFull or JitterNone)", int(s))
			return
		}
		c.jitter = s
	}
}

// Timeout bounds the whole acquisition, retries included (default 5s; must be
// positive). ctx bounds it too.
func Timeout(d time.Duration) AcquireOption {
	return func(c *acquireConfig) {
		if d <= 0 {
			c.fail("Timeout", "the acquisition timeout must be positive, got %v", d)
			return
		}
		c.timeout = d
	}
}

// BackoffPolicy replaces RetryDelay, Backoff and Jitter with a backoff/v4
// policy, made by newPolicy once per acquisition. MaxRetries and Timeout still
// apply; backoff.Stop ends the acquisition with AcquisitionTimeout.
func BackoffPolicy(newPolicy func() backoff.BackOff) AcquireOption {
	return func(c *acquireConfig) {
		if newPolicy == nil {
			c.fail("BackoffPolicy", "newPolicy must not be nil")
			return
		}
		c.policy = newPolicy
	}
}

// AutoExtend switches the lease's heartbeat, which extends it to its full TTL
// every TTL/3 (default: on for [Guard.Do], off for Acquire and TryAcquire). If
// an extension cannot succeed before the lease expires, the lease is lost:
// [Lease.Lost] closes and [Lease.Context] is cancelled. The heartbeat stops on
// release, on loss, and when the acquiring ctx ends.
func AutoExtend(on bool) AcquireOption {
	return func(c *acquireConfig) { c.autoExtend = &on }
}
