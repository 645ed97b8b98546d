package driver

import (
	"context"
	"time"
)

// LockStore is the lock half of the driver contract (docs/contract.md).
//
// Every method is a single attempt: drivers never retry, sleep or log on
// their own. Callers (syncguard.Guard and the conformance suite) pass only
// valid input: a key normalised by [NormalizeKey], a TTL accepted by
// [TTLMillis], a lock ID accepted by [ValidLockID] and a context that had
// not ended when the call began. A driver still maps what its I/O returns:
// a context that ends during the call yields Aborted (cancelled) or
// NetworkTimeout (deadline), both wrapping the context's error (see
// [ContextError]).
type LockStore interface {
	// Acquire takes key for ttl if no live lock holds it, in one atomic
	// step. Contention is a result (Acquired false, Reason "locked"), never
	// an error.
	Acquire(ctx context.Context, key string, ttl time.Duration) (AcquireResult, error)
	// Release deletes the lock lockID if it is still live. key is the key
	// the lock was acquired under, or "" for a release by lock ID alone
	// (which a driver without a lock-ID index refuses with
	// InvalidArgument). Of concurrent releases of one lock exactly one
	// reports OK.
	Release(ctx context.Context, key, lockID string) (ReleaseResult, error)
	// Extend sets the expiry of the live lock lockID to authority-now + ttl
	// (a reset, not an addition); key is as for Release. It never
	// recreates an absent or expired lock.
	Extend(ctx context.Context, key, lockID string, ttl time.Duration) (ExtendResult, error)
	// IsLocked reports whether a live lock holds key.
	IsLocked(ctx context.Context, key string) (bool, error)
	// LookupByKey returns the live lock of key, or nil if there is none
	// (absent and expired are not distinguished).
	LookupByKey(ctx context.Context, key string) (*LockInfo, error)
	// LookupByID returns the live lock lockID, or nil. Diagnostic only:
	// never gate Release or Extend on it. A driver without a lock-ID index
	// returns InvalidArgument.
	LookupByID(ctx context.Context, lockID string) (*LockInfo, error)
}

// RecordStore is the fenced-record half of the driver contract, used by
// OncePerKey and FencedWriter; every driver whose capability type is
// [Fenced] implements it. Records live in their own namespace, never
// confused with lock data. Names are valid keys; values may be empty.
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

// RateStore is the GCRA rate part of the driver contract, used by
// syncguard.RateLimiter. Limits reach it checked by [ValidateRateLimit].
type RateStore interface {
	// AllowN accounts n units against key under limit, atomically and with
	// the driver's time authority. n = 0 only inspects the state.
	AllowN(ctx context.Context, key string, limit RateLimit, n int) (RateResult, error)
	// ResetRate forgets the state of key.
	ResetRate(ctx context.Context, key string) error
}

// Backend is the whole contract of a fencing driver: locks, fenced records
// and rate.
type Backend interface {
	LockStore
	RecordStore
	RateStore
}

// Driver is a LockStore whose capability type C is known at compile time:
// syncguard.New infers C from it, so features that need a capability are
// checked by the compiler. The optional interfaces ([RecordStore],
// [RateStore], [ReleaseWatcher], [HandoffWatcher]) are found by type
// assertion on the driver value itself.
type Driver[C Capabilities] interface {
	LockStore
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

// LockInfo describes a live lock as the driver stores it. It holds the raw
// normalised key and lock ID: an application sees only the hashed view that
// syncguard.Guard builds from it.
type LockInfo struct {
	Key          string
	LockID       string
	Fence        Fence
	ExpiresAtMs  int64
	AcquiredAtMs int64
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
