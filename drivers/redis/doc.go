// Package redis is the SyncGuard driver for Redis, built on
// github.com/redis/rueidis. One driver serves a single node, a
// Sentinel-managed primary and a Redis Cluster: the mode is the rueidis
// client's (pass rueidis.ClientOption.Sentinel for Sentinel, several
// InitAddress seeds for a cluster).
//
//	client, err := rueidis.NewClient(rueidis.ClientOption{
//		InitAddress:  []string{"127.0.0.1:6379"},
//		DisableCache: true, // the driver never uses client-side caching
//	})
//	if err != nil { ... }
//	defer client.Close()
//	d, err := redis.New(client)
//	if err != nil { ... }
//	defer d.Close()
//	g := syncguard.New(d) // *syncguard.Guard[redis.Capabilities]
//
// The driver needs Redis 7.0 or newer.
//
// # Atomicity and time
//
// Every operation is one Lua script, loaded once per server and run by SHA
// (EVALSHA; rueidis falls back to EVAL the first time a server lacks it),
// so each operation is one round trip and atomic. Scripts read the server
// clock with TIME; the client clock is never used. A lock is live while
// expiresAt > now − [driver.Tolerance]; lock keys carry PX = ttl +
// tolerance, so Redis drops them exactly when they can no longer be live.
// The fenced-record read (GET) and the rate reset (DEL) are single
// commands.
//
// # Key layout and Redis Cluster
//
// All keys of one user key share a hash slot through a hash tag chosen by
// the driver, {tag}, placed right after the prefix:
//
//	syncguard:{tag}:lock:<key>    lock and fence counter (one hash)
//	syncguard:{tag}:id:<lockID>   lock-ID index → lock hash
//	syncguard:{tag}:rec:<key>     fenced record
//	syncguard:{tag}:rate:<key>    GCRA state
//	syncguard:{tag}:sem:<key>     permits, their summary and fence counter (one hash)
//
// The slot is CRC16 of the key, as Redis computes slots, and the tag is the
// shortest string hashing to it, so user keys spread over the cluster like
// ordinary keys (braces in a user key have no effect). A lock ID carries its
// lock's slot in its first 14 bits, or 15 in slots 15872..16383 so that no
// ID starts with '-' (see docs/redis.md, also for IDs of earlier
// releases); the other bits are from crypto/rand, and IDs keep the
// 22-character base64url format. So Release,
// Extend and LookupByID reach the right shard from the lock ID alone, and
// every script touches a single slot. The scripts of those three
// operations declare the index key in KEYS and read the lock hash whose
// name the index holds, which lives in the same slot by construction. A
// [syncguard.Lease] releases and extends with its key as well
// ([Driver.Release] and [Driver.Extend] with a key), which skips the index.
//
// The type segment (lock:, id:, …) sits between the tag and the user
// key, so no user key can alias an index: keys such as
// "id:<22 chars>" or "fence:syncguard:x" are ordinary keys here. Long keys
// are replaced by a SHA-256-based digest ([driver.StorageKey]) so that
// names stay within 1000 bytes; a hashed key shares its namespace with
// user keys of the same 22-character shape, a collision that needs a
// 128-bit digest match.
//
// # Fences across restarts and failover
//
// A fence is max(counter + 1, the server clock in 10 µs units since 2025)
// ([driver.FenceFloor]), computed in the acquisition script. Redis
// replicates asynchronously and a node without persistence forgets
// everything when it restarts; the floor keeps fences increasing across
// both — a promoted replica, or a restarted node, hands out fences from its
// clock, greater than every earlier one as long as the clocks agree within
// the time since the key's last acquisition. The counter only orders
// acquisitions within one 10 µs unit; it is a field of the key's lock
// hash, which expires with the lock or [driver.FenceMarginMs] after the
// floor has passed the counter, whichever is later, so Redis keeps state
// only for live keys.
// The script reads no INFO and makes no extra round trip.
//
// # Wake-up
//
// Release publishes on the key's channel with SPUBLISH (sharded pub/sub:
// in a Cluster the message stays within the shard of the key). Watchers
// subscribe with SSUBSCRIBE, once per key per driver however many
// goroutines wait (a subscription lingers 500 ms after its last watcher,
// so a process that waits again soon does not resubscribe).
//
// Guard waits through [Driver.WatchHandoff]: its waiters queue on the
// server (a sorted set in the key's slot, first come first served), and a
// release grants the lock to the queue's head in the same script and
// publishes the grant on that waiter's driver's inbox channel, so exactly
// one waiter (in one process) wakes, already holding the lock, and a
// releaser that tries again cannot barge ahead of the queue.
// [Driver.WatchRelease] (plain watchers) is woken by every release of a
// key it marked (releases of unwatched keys publish nothing). A
// waiter that misses a message (a reconnect, an expiry without a release)
// wakes on its backoff timer as without the wake-up, and a waiter that
// missed its grant claims it with that attempt. Queued waiters renew a
// liveness marker with each attempt (Guard attempts at least once a
// second), and a release passes over waiters silent for 3 s: a waiter that
// crashed while queued does not inherit the key (see docs/redis.md).
//
// # Errors and cancellation
//
// Errors are [driver.LockError] values classified by type: the
// context's own error (Canceled → Aborted, DeadlineExceeded →
// NetworkTimeout, both wrapping it), then Redis error replies by their
// code prefix (LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, READONLY,
// OOM → ServiceUnavailable; NOAUTH, WRONGPASS, NOPERM → AuthFailed;
// WRONGTYPE → InvalidArgument), then network errors (timeouts →
// NetworkTimeout; refused, reset, EOF, closed client → ServiceUnavailable);
// anything else is Internal. Every operation returns as soon as its
// context ends, even while the request is in flight (a call whose context
// can end runs on a reused worker goroutine: rueidis alone does not honour
// a cancellation during the handshake of a connection it dials inside the
// call, nor outside its pipelined mode; one whose context cannot end runs
// inline with the call timeout as its deadline). An Acquire that fails
// after its request may have reached Redis releases the lock ID it minted
// in the background (bounded by 5 s), so an acquisition nobody saw does not
// hold the key until its TTL.
//
// # Lock-only mode
//
// [NewLockOnly] returns a driver without fencing ([LockOnlyCapabilities]):
// SET NX PX and compare-and-delete on one key per lock, no fence counter,
// no lock-ID index; Release and Extend need the key (a Lease passes it).
//
// # Client options
//
// The driver does not create or close clients. rueidis retries read-only
// commands on connection errors; the driver's scripts are not retried by
// rueidis, so an acquisition is executed at most once per call.
package redis
