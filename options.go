package syncguard

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Option configures a [Guard]. Pass options to [New].
type Option func(*guardConfig)

type guardConfig struct {
	observer       Observer
	telemetryOpts  []TelemetryOption
	tel            telemetryConfig // built from telemetryOpts
	onReleaseError func(error, ReleaseErrorInfo)
	disposeTimeout time.Duration
	releaseTimeout time.Duration
	logger         *slog.Logger
	defaults       []AcquireOption
	random         func() float64 // tests only
}

// ReleaseErrorInfo describes a release that failed where no caller could
// receive the error: in [Lease.Close] and in [Guard.Do].
type ReleaseErrorInfo struct {
	LockID string
	// Key is the normalised key. It may be sensitive; the default handler
	// never logs it.
	Key string
	// Source is "disposal".
	Source string
}

// SourceDisposal is ReleaseErrorInfo.Source for releases made by
// [Lease.Close] and [Guard.Do].
const SourceDisposal = "disposal"

// WithObserver sends an [Event] to o for every driver call the Guard and its
// leases make, plus lost-lease events. Observer panics are recovered and
// never change results. Keys and lock IDs are reported as hashes unless
// [IncludeRaw] is among opts.
func WithObserver(o Observer, opts ...TelemetryOption) Option {
	return func(c *guardConfig) {
		c.observer = o
		c.telemetryOpts = opts
	}
}

// WithOnReleaseError sets the callback for releases that fail in
// [Lease.Close] or [Guard.Do], where no caller receives the error. It
// replaces the default, which logs the error's message and type (never the
// key or lock ID) at Warn level. Panics in fn are recovered and ignored.
func WithOnReleaseError(fn func(err error, info ReleaseErrorInfo)) Option {
	return func(c *guardConfig) { c.onReleaseError = fn }
}

// WithDisposeTimeout bounds [Lease.Close]: the release runs on a fresh
// context with timeout d and Close returns by the deadline even if the
// driver ignores its context, reporting one NetworkTimeout error to the
// release-error callback. d ≤ 0 (the default) means no timeout.
func WithDisposeTimeout(d time.Duration) Option {
	return func(c *guardConfig) { c.disposeTimeout = d }
}

// WithReleaseTimeout sets the deadline of the detached release that
// [Guard.Do] makes after its function returned (default 5s). The release
// does not use the caller's context, so a cancelled caller never leaks its
// lock until the TTL.
func WithReleaseTimeout(d time.Duration) Option {
	return func(c *guardConfig) {
		if d > 0 {
			c.releaseTimeout = d
		}
	}
}

// WithLogger sets the logger of the default release-error handler and of
// lost-lease reports (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *guardConfig) { c.logger = l }
}

// WithAcquireDefaults sets acquisition options applied before the options
// of each call.
func WithAcquireDefaults(opts ...AcquireOption) Option {
	return func(c *guardConfig) { c.defaults = append(c.defaults, opts...) }
}

// withRandom replaces the jitter source (tests).
func withRandom(f func() float64) Option {
	return func(c *guardConfig) { c.random = f }
}

// AcquireOption configures one acquisition: [Guard.Acquire],
// [Guard.TryAcquire] or [Guard.Do].
type AcquireOption func(*acquireConfig)

// BackoffStrategy selects how the retry delay grows.
type BackoffStrategy int

// Backoff strategies.
const (
	// BackoffExponential: RetryDelay·2^(attempt−1) (the default).
	BackoffExponential BackoffStrategy = iota
	// BackoffFixed: RetryDelay every time.
	BackoffFixed
)

// JitterStrategy selects how the retry delay is randomised.
type JitterStrategy int

// Jitter strategies, applied to the backoff delay d.
const (
	// JitterEqual: d/2 + U·d/2, U uniform in [0,1) (the default).
	JitterEqual JitterStrategy = iota
	// JitterFull: U·d.
	JitterFull
	// JitterNone: d.
	JitterNone
)

// Acquisition defaults (contract §10).
const (
	DefaultMaxRetries = 10
	DefaultRetryDelay = 100 * time.Millisecond
	DefaultTimeout    = 5 * time.Second
	// DefaultReleaseTimeout bounds the detached release of Guard.Do.
	DefaultReleaseTimeout = 5 * time.Second
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

// TTL sets the lock's time to live (default 30s). It must be a positive
// whole number of milliseconds, at most 100 years.
func TTL(d time.Duration) AcquireOption {
	return func(c *acquireConfig) {
		if msg := ttlProblem(d); msg != "" {
			c.fail("TTL", "%s, got %v", msg, d)
			return
		}
		c.ttl = d
	}
}

// ttlProblem describes what makes d an invalid lock TTL, or returns "".
func ttlProblem(d time.Duration) string {
	if d <= 0 || d%time.Millisecond != 0 {
		return "the lock TTL must be a positive whole number of milliseconds"
	}
	if d/time.Millisecond > maxTTLMs {
		return "the lock TTL must be at most 100 years"
	}
	return ""
}

// MaxRetries sets how many times a contended acquisition is retried
// (default 10): at most n+1 attempts. n must not be negative.
func MaxRetries(n int) AcquireOption {
	return func(c *acquireConfig) {
		if n < 0 {
			c.fail("MaxRetries", "the number of retries must not be negative, got %d", n)
			return
		}
		c.maxRetries = n
	}
}

// RetryDelay sets the base retry delay (default 100ms). Zero retries at
// once; negative is invalid.
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

// Timeout bounds the whole acquisition including retries (default 5s).
// It must be positive. The caller's context bounds it too.
func Timeout(d time.Duration) AcquireOption {
	return func(c *acquireConfig) {
		if d <= 0 {
			c.fail("Timeout", "the acquisition timeout must be positive, got %v", d)
			return
		}
		c.timeout = d
	}
}

// BackOffPolicy replaces the built-in backoff (RetryDelay, Backoff, Jitter)
// with a github.com/cenkalti/backoff/v4 policy; newPolicy is called once per
// acquisition. MaxRetries and Timeout still apply; backoff.Stop ends the
// acquisition with AcquisitionTimeout.
func BackOffPolicy(newPolicy func() backoff.BackOff) AcquireOption {
	return func(c *acquireConfig) {
		if newPolicy == nil {
			c.fail("BackOffPolicy", "newPolicy must not be nil")
			return
		}
		c.policy = newPolicy
	}
}

// AutoExtend switches the lease's heartbeat on or off. While on, the lease
// extends itself to its full TTL every TTL/3; if it cannot (the lock was
// taken over, or the backend stayed unreachable until the lease expired),
// the lease is lost: [Lease.Lost] closes and [Lease.Context] is cancelled.
// The heartbeat stops when the lease is released or lost or the context
// passed to Acquire ends, so an abandoned lease still expires by its TTL.
//
// Default: on for [Guard.Do], off for [Guard.Acquire] and [Guard.TryAcquire].
func AutoExtend(on bool) AcquireOption {
	return func(c *acquireConfig) { c.autoExtend = &on }
}
