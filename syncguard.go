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
