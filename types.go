package syncguard

import "github.com/syncguard/syncguard/driver"

// Fence is a fencing token: every acquisition of a key receives one
// strictly greater than all earlier ones of that key. Pass it to the
// resource you protect and let it refuse older fences ([FencedWriter],
// package pgfence). Its decimal form, [Fence.String], is 15 digits wide,
// so that fences also compare correctly as strings.
type Fence = driver.Fence

// Capability constraints. A Guard's type parameter is its driver's
// capability type; features that need a guarantee are constrained on it,
// so misuse does not compile.
type (
	// Fenced: every acquisition gets a [Fence] and the driver stores
	// fenced records. FenceOf, FencedWriter and OncePerKey need it, and
	// [NewFenced] gives every such driver the one type Guard[Fenced].
	Fenced = driver.Fenced
	// ServerTime: expiry is judged by one clock shared by all clients.
	ServerTime = driver.ServerTime
	// FairHandoff: waiters are served first come, first served.
	FairHandoff = driver.FairHandoff
	// CrossProcess: a lock excludes other processes and machines, not
	// only the goroutines of one process.
	CrossProcess = driver.CrossProcess
)

// RateLimit describes a GCRA limit: Limit events per Period, with bursts of
// up to Burst events (see [RateLimiter]).
type RateLimit = driver.RateLimit

// RateResult is the outcome of [RateLimiter.AllowN].
type RateResult = driver.RateResult

// LockError is the error type of every syncguard operation: a [Code]-like
// classification (its Code field) with a message, and the cause reachable
// with errors.Unwrap. errors.Is(err, ErrX) matches any LockError of X's
// code.
type LockError = driver.LockError

// Sentinels for errors.Is, one per error code.
var (
	// ErrServiceUnavailable: the backend could not be reached. Retry later.
	ErrServiceUnavailable = driver.ErrServiceUnavailable
	// ErrAuthFailed: the backend rejected the credentials or permissions.
	ErrAuthFailed = driver.ErrAuthFailed
	// ErrInvalidArgument: bad input (key, lock ID, TTL, option) or a
	// misconfigured backend. Do not retry.
	ErrInvalidArgument = driver.ErrInvalidArgument
	// ErrRateLimited: the backend is out of capacity. Back off.
	ErrRateLimited = driver.ErrRateLimited
	// ErrNetworkTimeout: the operation did not finish in time, including
	// an expired context deadline. Its outcome is unknown.
	ErrNetworkTimeout = driver.ErrNetworkTimeout
	// ErrAcquisitionTimeout: retries or the Timeout ran out on a contended
	// key. Such errors also match ErrLocked.
	ErrAcquisitionTimeout = driver.ErrAcquisitionTimeout
	// ErrAborted: the caller's context was cancelled.
	ErrAborted = driver.ErrAborted
	// ErrInternal: a bug or an unexpected backend answer.
	ErrInternal = driver.ErrInternal
)

// IsUnavailable reports whether err says the backend could not be reached
// or did not answer in time (ErrServiceUnavailable or ErrNetworkTimeout).
// Guard retries such acquisitions within their Timeout, leases retry such
// releases in the background, and the rate-limit middleware fails open
// only on them.
func IsUnavailable(err error) bool { return driver.IsUnavailable(err) }
