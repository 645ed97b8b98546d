// Package syncguard gives Go services distributed locks with TTLs, ownership
// IDs and monotonic fencing tokens, and primitives built on them, over
// Redis, PostgreSQL, Firestore or an in-process driver.
//
// A [Guard] wraps one driver and is what an application calls:
//
//	g := syncguard.NewFenced(memory.New()) // or redis.New(client), postgres.New(pool)
//	err := g.Do(ctx, "payment:123", func(ctx context.Context, l *syncguard.Lease[syncguard.Fenced]) error {
//		// One holder at a time; ctx ends if the lease is lost.
//		return charge(ctx, syncguard.FenceOf(l))
//	})
//
// Do acquires with retry and backoff, runs the function and releases on
// every path. Acquire and TryAcquire return a [Lease] to release yourself.
// Every acquisition of a key gets a [Fence] strictly greater than all
// earlier ones of that key: pass it to what you protect, because a TTL
// alone cannot stop a holder that paused past it.
//
// A Guard's type parameter is its driver's capability type; features that
// need a guarantee ([Fenced], [ServerTime], [FairHandoff], [CrossProcess])
// are constrained on it, so misuse does not compile. [NewFenced] gives
// every fencing driver the one type Guard[Fenced].
//
// Failures are [*LockError] values; match them with errors.Is and the Err
// sentinels. The primitives — [DistributedMutex], [OncePerKey],
// [RateLimiter], [FencedWriter] — work on every driver; packages httpmw and
// pgfence build HTTP middleware and fenced SQL writes on them. Drivers
// implement package driver (see docs/contract.md).
package syncguard
