package syncguard

import "github.com/syncguard/syncguard/driver"

// Fence is a fencing token: each acquisition of a key gets one greater than
// all earlier ones of that key. Its String form is 15 zero-padded digits, so
// fences also compare correctly as strings.
type Fence = driver.Fence

// Capability constraints. A Guard's type parameter is its driver's
// capability type; features that need a guarantee are constrained on it,
// so misuse does not compile.
type (
	// Fenced: every acquisition gets a [Fence] and the driver stores fenced
	// records. [FenceOf], [FencedWriter] and [OncePerKey] need it.
	Fenced = driver.Fenced
	// ServerTime: expiry is judged by one clock shared by all clients.
	ServerTime = driver.ServerTime
	// FairHandoff: waiters are served first come, first served.
	FairHandoff = driver.FairHandoff
	// CrossProcess: a lock excludes other processes and machines, not only the
	// goroutines of one process.
	CrossProcess = driver.CrossProcess
)

// RateLimit is a GCRA limit: Limit events per Period, with bursts of up to
// Burst events.
type RateLimit = driver.RateLimit

// RateResult is the outcome of [RateLimiter.AllowN].
type RateResult = driver.RateResult

// LockError is the error of every syncguard operation: a [driver.Code] (its
// Code field), a message and the cause, reachable with errors.Unwrap.
// errors.Is(err, ErrX) matches any LockError of X's code.
type LockError = driver.LockError

// Sentinels for errors.Is, one per error code.
var (
	ErrServiceUnavailable = driver.ErrServiceUnavailable // backend unreachable; retry later
	ErrAuthFailed         = driver.ErrAuthFailed         // credentials or permissions rejected
	ErrInvalidArgument    = driver.ErrInvalidArgument    // bad input or misconfigured backend; do not retry
	ErrRateLimited        = driver.ErrRateLimited        // backend out of capacity; back off
	ErrNetworkTimeout     = driver.ErrNetworkTimeout     // no answer in time, or ctx's deadline passed: outcome unknown
	ErrAcquisitionTimeout = driver.ErrAcquisitionTimeout // retries or Timeout ran out on a held key; also matches [ErrLocked]
	ErrAborted            = driver.ErrAborted            // the caller's context was cancelled
	ErrInternal           = driver.ErrInternal           // a bug or an unexpected backend answer
)

// IsUnavailable reports whether err matches [ErrServiceUnavailable] or
// [ErrNetworkTimeout]: the backend was unreachable or did not answer in time.
func IsUnavailable(err error) bool { return driver.IsUnavailable(err) }
