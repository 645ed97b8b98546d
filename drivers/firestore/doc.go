// Package firestore is the SyncGuard driver for Google Cloud Firestore,
// built on cloud.google.com/go/firestore. It is a Go module of its own
// (github.com/syncguard/syncguard/drivers/firestore), so that programs that
// do not use Firestore do not depend on the Google Cloud client libraries.
//
//	client, err := firestore.NewClient(ctx, "my-project")
//	if err != nil { ... }
//	defer client.Close()
//	d, err := sgfirestore.New(client)
//	if err != nil { ... }
//	defer d.Close()
//	if err := d.CheckIndex(ctx); err != nil { ... } // optional startup check
//	g := syncguard.New(d) // *syncguard.Guard[sgfirestore.Capabilities]
//
// # Time authority: the client clock
//
// Firestore offers no server clock that a transaction can read, so expiry
// is judged by the clock of each client, read inside the transaction after
// its reads. The capability type says so: [Capabilities] does not satisfy
// [driver.ServerTime]. Every process using the same
// collections must keep its clock synchronised (NTP): aim for ≤ 100 ms of
// skew, alert at 200 ms, and do not deploy at 500 ms or more. A client whose
// clock runs ahead sees locks expire early and can take a lock that is
// still held elsewhere; the 1 s tolerance covers small skew only.
//
// # Layout
//
// A lock is a document of the lock collection (default "locks") whose ID
// is the key (hashed when longer than 1500 bytes, and — unlike upstream —
// also when the key contains '/', is "." or "..", or has the reserved form
// __x__, so such keys work end to end), with fields lockId, expiresAtMs,
// acquiredAtMs, key and fence. Fence counters live in their own collection
// (default "fence_counters"), one document per lock document; [Driver.Sweep]
// deletes one once the fence floor has passed it by [driver.FenceMarginMs]
// (a TTL policy on expireAt does the same). Fenced records, rate-limit state and semaphore permits have
// collections of their own ("syncguard_records", "syncguard_rate",
// "syncguard_permits"); a key's permits are one document holding its permit
// fence counter and a map of its permits (see docs/firestore.md#permits).
//
// # Transactions
//
// Every mutation is one transaction that does all its reads before its
// writes. Release, Extend and LookupByID find the lock by a query on lockId
// (which needs the single-field index described in docs/firestore.md); the
// query runs outside the transaction — a query inside one would lock its
// whole result range — and the transaction re-reads the documents it found
// and re-checks their lockId. Should two documents carry one lock ID
// (possible only through outside writes), expired ones are deleted, a
// single live one is used, and two live ones fail the operation.
//
// Firestore transactions lock pessimistically, and transactions that read
// and then write one document wait on each other, so the driver lets one
// transaction per document run at a time in each process; contention
// between processes is resolved by Firestore, which aborts and retries
// (at most [WithMaxAttempts] attempts, default 5; a transaction aborted
// every time fails with ServiceUnavailable). A context that ends inside
// the transaction ends it for good: the SDK does not retry it.
//
// # Wake-up
//
// [Driver.WatchRelease] listens to the lock document (one listen stream
// per watch) and signals when the document is deleted or taken by another
// lock ID. Waiters keep their backoff fallback for expiries, which change
// nothing in the document.
package firestore
