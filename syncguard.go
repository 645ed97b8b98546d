// Package syncguard provides distributed locks with TTLs, ownership IDs and
// fencing tokens, and primitives built on them, over Redis, PostgreSQL,
// Firestore or an in-process driver. A [Guard] wraps one driver:
//
//	g := syncguard.NewFenced(memory.New())
//	err := g.Do(ctx, "payment:123", func(ctx context.Context, l *syncguard.Lease[syncguard.Fenced]) error {
//		return charge(ctx, syncguard.FenceOf(l)) // ctx ends if the lease is lost
//	})
//
// Each acquisition of a key gets a [Fence] greater than all earlier ones of
// that key: pass it to what you protect, since a TTL cannot stop a holder that
// paused past it. Features that need a driver guarantee ([Fenced],
// [ServerTime], [FairHandoff], [CrossProcess]) are constrained on the Guard's
// capability type, so misuse does not compile. Failures are [*LockError]
// values matched with errors.Is and the Err sentinels.
//
// The primitives [DistributedMutex], [OncePerKey] and [FencedWriter] build on
// a Guard, [RateLimiter] on a driver; packages httpmw and pgfence build on
// them, and drivers implement package driver. Guides are in docs/.
package syncguard
