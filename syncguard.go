// Package syncguard provides distributed coordination primitives — locks with
// TTLs, ownership IDs and monotonic fencing tokens — over pluggable backends
// (Redis, PostgreSQL, Firestore and an in-process driver).
//
// # Overview
//
// A [Guard] wraps one driver and is the entry point for application code:
//
//	g := syncguard.New(memory.New())
//	err := g.Do(ctx, "payment:123", func(ctx context.Context, l *syncguard.Lease[memory.Capabilities]) error {
//		// Only one process at a time runs this for payment:123.
//		// ctx is cancelled if the lease is lost.
//		return charge(ctx, syncguard.FenceOf(l))
//	})
//
// [Guard.Do] acquires with retry and backoff, runs the function and releases
// the lock on every path (return, error, panic, cancellation of the caller's
// context). [Guard.Acquire] and [Guard.TryAcquire] return a [Lease] for manual
// control; a Lease can keep itself alive (auto-extend) and signals through
// [Lease.Lost] and its context when it cannot.
//
// # Guarantees
//
// Every driver implements the same contract ([Backend]): acquisition is one
// atomic step on the backend (no check-then-set race), only the holder of a
// lock ID can release or extend it, and every successful acquisition of a key
// receives a fencing token ([Fence]) strictly greater than all earlier tokens
// of that key — across release, expiry, cleanup and restarts, including a
// Redis node restarted without persistence: a fence is floored by the
// server clock ([FenceFloor]), so it needs no counter that lives for ever,
// and a key's state ends soon after its lock. A lock whose TTL
// has passed stays blocked for a further [Tolerance] (1 s) so that small clock
// differences never let two holders overlap.
//
// A TTL alone is not safety: a holder that pauses (GC, swap, a stopped VM)
// past its TTL still believes it holds the lock. Pass the fence to the
// resource you protect and let it refuse older fences; see [FenceOf].
//
// # Capabilities
//
// A Guard is parameterised by its driver's capability type (for example
// memory.Capabilities). Features that only some backends provide are
// constraints on that type, so misuse fails to compile: [FenceOf] requires a
// fencing driver ([FencedCapabilities]) and code may demand a server-side time
// authority with [ServerTimeCapabilities].
//
// # Errors
//
// Failures are *[LockError] values carrying a [Code]. Use errors.Is with the
// sentinels ([ErrServiceUnavailable], [ErrInvalidArgument], …) or [CodeOf].
// Contention is not an error of the driver contract: [AcquireResult.Acquired]
// is false. At the Guard level, a failed single attempt returns [ErrLocked]
// and exhausted retries an AcquisitionTimeout error that also matches
// [ErrLocked].
//
// # Primitives
//
// Built on Guard and the driver contract, so each works on every driver:
//
//   - [DistributedMutex] ([NewMutex]): Lock, Unlock, TryLock and LockContext;
//     a [sync.Locker] shared safely by the goroutines of one process, which
//     extends itself while held.
//   - [OncePerKey] ([NewOncePerKey]): run a function at most once per key
//     across all processes and hand its stored result to every later
//     caller; package httpmw builds an Idempotency-Key middleware on it.
//   - [RateLimiter] ([NewRateLimiter]): GCRA per key, computed atomically
//     by the driver with its time authority; httpmw has the middleware.
//   - [FencedWriter] ([NewFencedWriter]): writes that carry the lease's
//     fence, refused with [ErrStaleFence] when a newer holder already
//     wrote; package pgfence fences writes to your own PostgreSQL tables.
//
// # Drivers
//
// Driver packages live under drivers/: memory (in-process, the embedded
// default), redis (rueidis; single node, Sentinel, Cluster), postgres
// (pgx/v5) and firestore (a module of its own). A driver implements
// [Driver] for its capability type; the conformance package checks every
// driver against the same behaviour catalogue.
package syncguard

import (
	"context"
	"time"
)

// LockStore is the lock half of the driver contract. Every method is a single
// attempt: drivers never retry, sleep or log on their own. All methods
// validate their arguments before any I/O and return a *LockError with code
// InvalidArgument for bad input. A cancelled ctx yields Aborted, an expired
// deadline NetworkTimeout; both wrap the context's error.
type LockStore interface {
	// Acquire takes key for ttl if no live lock holds it. Contention is a
	// result (Acquired false, Reason "locked"), never an error. ttl must be a
	// positive whole number of milliseconds.
	Acquire(ctx context.Context, key string, ttl time.Duration) (AcquireResult, error)
	// Release deletes the lock identified by lockID if it is still live and
	// owned by that ID. Of concurrent releases of one lock exactly one
	// reports OK.
	Release(ctx context.Context, lockID string) (ReleaseResult, error)
	// Extend sets the lock's expiry to authority-now + ttl (a reset, not an
	// addition). It never recreates an absent or expired lock.
	Extend(ctx context.Context, lockID string, ttl time.Duration) (ExtendResult, error)
	// IsLocked reports whether a live lock holds key.
	IsLocked(ctx context.Context, key string) (bool, error)
	// LookupByKey returns sanitized information on the live lock of key, or
	// nil if there is none (absent and expired are not distinguished).
	LookupByKey(ctx context.Context, key string) (*LockInfo, error)
	// LookupByID returns sanitized information on the live lock with lockID,
	// or nil. Diagnostic only: never gate Release or Extend on it.
	LookupByID(ctx context.Context, lockID string) (*LockInfo, error)
}

// RecordStore is the fenced-record half of the driver contract, used by
// OncePerKey and FencedWriter. Records live in their own namespace, never
// confused with lock data.
type RecordStore interface {
	// PutRecord stores value under name if no record exists or the stored
	// fence is ≤ fence (equal means the same holder writing again). Otherwise
	// it changes nothing and reports Stored false with the current fence. The
	// comparison and the write are one atomic step. ttl 0 means no expiry.
	PutRecord(ctx context.Context, name string, fence Fence, value []byte, ttl time.Duration) (PutResult, error)
	// GetRecord returns the record stored under name, or nil if there is
	// none (or it has expired).
	GetRecord(ctx context.Context, name string) (*Record, error)
	// DeleteRecord removes the record stored under name if its fence is ≤
	// fence, reporting whether it deleted one.
	DeleteRecord(ctx context.Context, name string, fence Fence) (bool, error)
}

// RateStore is the GCRA rate half of the driver contract, used by
// RateLimiter.
type RateStore interface {
	// AllowN accounts n units against key under limit, atomically and with
	// the driver's time authority. n = 0 only inspects the state.
	AllowN(ctx context.Context, key string, limit RateLimit, n int) (RateResult, error)
	// ResetRate forgets the state of key.
	ResetRate(ctx context.Context, key string) error
}

// Backend is the complete driver contract: locks, fenced records and rate.
type Backend interface {
	LockStore
	RecordStore
	RateStore
}

// Driver is a Backend whose capability type C is known at compile time.
// [New] infers C from the driver, so Guard's fenced-only and
// server-time-only features are checked by the compiler.
type Driver[C Capabilities] interface {
	Backend
	// Capabilities returns the driver's capability value. Its type carries
	// the guarantees; [Describe] turns it into a runtime description.
	Capabilities() C
}

// ReleaseWatcher is an optional driver interface: it tells waiters that a
// key may have been released, so that a contended acquisition retries at once
// instead of sleeping the whole backoff. Spurious wake-ups are allowed;
// missed ones are bounded by the backoff fallback.
type ReleaseWatcher interface {
	// WatchRelease subscribes to releases of key. The returned channel
	// receives a value (or is closed) when key may have been released; stop
	// ends the subscription and must be called exactly once.
	WatchRelease(ctx context.Context, key string) (ch <-chan struct{}, stop func(), err error)
}

// HandoffWatcher is an optional driver interface that extends release
// watching with a first-come, first-served hand-off: waiters of one key
// form a queue on the backend, and a release hands the key to the queue's
// head (for example by granting it the lock in the release itself) and
// wakes only that waiter, instead of waking every waiter to race for
// it. Guard uses it in preference to [ReleaseWatcher] (see
// [AsHandoffWatcher]).
//
// Fairness is best-effort: a waiter that stops waiting leaves the queue
// (handing on what it was granted), and a crashed waiter stops renewing
// its place (see [Handoff] Renew) and is skipped.
type HandoffWatcher interface {
	// WatchHandoff subscribes a new waiter to key. The waiter joins the
	// queue with its first attempt through [Handoff.Acquire]; the returned
	// channel holds a signal on return so that this attempt happens at once.
	// A driver that cannot subscribe (notifications refused or switched
	// off) should still return a waiter, with C already closed, that
	// queues and claims its grants by its attempts alone: a plain poller
	// would find the key handed to the queue on every release. Errors are
	// for an invalid key, an ended ctx or a closed driver.
	WatchHandoff(ctx context.Context, key string) (*Handoff, error)
	// WarmHandoff returns a new waiter of key without any I/O when this
	// process already holds a live subscription to key's releases (it
	// waited for key recently), or nil. Its C holds no initial signal:
	// its first Acquire is the caller's first attempt, queued at once.
	WarmHandoff(key string) *Handoff
}

// Handoff is one waiter of a [HandoffWatcher].
type Handoff struct {
	// C receives a value when it may be the waiter's turn (spurious
	// wake-ups are allowed) and is closed when the subscription ends, after
	// which the waiter should fall back to plain backoff.
	C <-chan struct{}
	// Acquire is one acquisition attempt of key as this waiter, with the
	// semantics of [LockStore.Acquire]: a contended attempt (re)joins the
	// queue; a successful one leaves it.
	Acquire func(ctx context.Context, ttl time.Duration) (AcquireResult, error)
	// Stop leaves the queue (handing on a lock the waiter was granted)
	// and ends the subscription. It must be called exactly once; later calls
	// do nothing.
	Stop func()
	// Renew, when positive, is the longest the waiter may go between
	// attempts: each contended attempt renews its place, and a waiter
	// silent for much longer is taken for dead and skipped by the
	// hand-off. Guard caps its backoff to it while waiting.
	Renew time.Duration
}

// AcquireResult is the outcome of a single acquisition attempt.
type AcquireResult struct {
	// Acquired reports whether this call took the lock.
	Acquired bool
	// Reason is "locked" when Acquired is false.
	Reason string
	// LockID identifies the new lock; it is the only way to release or
	// extend it.
	LockID string
	// Fence is the fencing token of this acquisition.
	Fence Fence
	// ExpiresAtMs is the lock's expiry in Unix milliseconds, read from the
	// driver's time authority.
	ExpiresAtMs int64
}

// ReasonLocked is AcquireResult.Reason for a contended key.
const ReasonLocked = "locked"

// Detail values of ReleaseResult and ExtendResult: best-effort explanations
// of a failed operation, for telemetry only.
const (
	DetailExpired  = "expired"
	DetailNotFound = "not-found"
)

// ReleaseResult is the outcome of Release.
type ReleaseResult struct {
	// OK reports whether this call deleted the lock.
	OK bool
	// Detail is "", DetailExpired or DetailNotFound. Never use it for
	// control flow.
	Detail string
}

// ExtendResult is the outcome of Extend.
type ExtendResult struct {
	// OK reports whether the lock was extended.
	OK bool
	// ExpiresAtMs is the new expiry in Unix milliseconds when OK.
	ExpiresAtMs int64
	// Detail is "", DetailExpired or DetailNotFound.
	Detail string
}

// LockInfo is the sanitized view of a live lock: the key and lock ID are
// replaced by [HashKey] digests so that it can be logged safely.
type LockInfo struct {
	KeyHash      string
	LockIDHash   string
	Fence        Fence
	ExpiresAtMs  int64
	AcquiredAtMs int64
}

// RawLockInfo is LockInfo plus the raw normalised key and lock ID. Obtain it
// through [GetByKeyRaw] or [GetByIDRaw] only where exposing them is safe.
type RawLockInfo struct {
	LockInfo
	Key    string
	LockID string
}

// RawLookup is an optional driver interface returning raw lock data.
type RawLookup interface {
	LookupRawByKey(ctx context.Context, key string) (*RawLockInfo, error)
	LookupRawByID(ctx context.Context, lockID string) (*RawLockInfo, error)
}

// PutResult is the outcome of PutRecord.
type PutResult struct {
	// Stored reports whether the value was written.
	Stored bool
	// Fence is the fence of the record now stored: the caller's when Stored,
	// the newer one that refused the write otherwise.
	Fence Fence
}

// Record is a fenced record.
type Record struct {
	Value []byte
	Fence Fence
	// ExpiresAtMs is the record's expiry in Unix milliseconds, 0 for none.
	ExpiresAtMs int64
}

// RateLimit describes a GCRA limit: Limit events per Period, with bursts of
// up to Burst events. Limit, Period and Burst must be positive; the emission
// interval Period/Limit must be at least one microsecond.
type RateLimit struct {
	Limit  int
	Period time.Duration
	Burst  int
}

// RateResult is the outcome of AllowN. Semantics follow go-redis/redis_rate:
// the emission interval is Period/Limit and the burst tolerance is the
// emission interval × Burst.
type RateResult struct {
	// Allowed is the number of units granted: n or 0.
	Allowed int
	// Remaining is how many more units could be granted now.
	Remaining int
	// RetryAfter is how long to wait until the request could be granted;
	// 0 when it was allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the state returns to full burst.
	ResetAfter time.Duration
}
