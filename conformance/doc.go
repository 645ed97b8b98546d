// Package conformance is the shared behaviour suite that every SyncGuard
// driver must pass: the cases of docs/contract.md's "Conformance cases"
// table — locks, fences, fenced records (R cases), GCRA rate (G cases),
// wake-up and hand-off (W cases) and the key rule (K01).
//
// It is an ordinary package, imported by each driver's tests, in the style
// of gocloud.dev's drivertest. A driver that needs no hooks into its
// storage runs it in one call:
//
//	func TestConformance(t *testing.T) {
//		conformance.RunDriver(t, func(*testing.T) driver.Driver[mystore.Capabilities] { return mystore.New() }, conformance.Options{})
//	}
//
// The suite runs each case as a subtest named after it, such as
// "TestConformance/redis/case009_held_key_is_contended", against a real
// backend. It reads the driver's capabilities from its capability type
// ([driver.Describe]): the cases that need fencing, records, rate, a
// lock-ID index or fair hand-off skip, saying why, on a driver without
// them, so a lock-only driver runs the same suite.
//
// # Writing a harness
//
// A driver with state to clean up, or hooks to offer, implements a
// [Harness] and calls [Run]. A harness hands the suite the driver under test, in a namespace of its
// own (a key prefix, a database, tables or collections), and cleans up in
// Close. Run builds one harness per call and runs all cases concurrently on
// it, each case on keys prefixed with its own ID and a random per-run token:
//
//	type harness struct {
//		client rueidis.Client
//		driver *redis.Driver // over client, with the run's key prefix
//		prefix string
//	}
//
//	func (h *harness) Driver() driver.Driver[redis.Capabilities] { return h.driver }
//
//	func (h *harness) Close() { h.driver.Close(); deleteKeys(h.client, h.prefix+"*"); h.client.Close() }
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[redis.Capabilities], error) {
//			client, err := dial(ctx)
//			if err != nil {
//				t.Skipf("Redis not available (start it with scripts/test): %v", err)
//			}
//			prefix := "sgtest:" + t.Name()
//			d, err := redis.New(client, redis.WithKeyPrefix(prefix))
//			if err != nil {
//				client.Close()
//				return nil, err
//			}
//			return &harness{client: client, driver: d, prefix: prefix}, nil
//		}, conformance.Options{})
//	}
//
// # Optional harness interfaces
//
// A few cases need access below the driver: writing lock data directly
// ([RawLockWriter], case 26), presetting a fence counter ([FenceSetter],
// case 45), looking at storage ([StorageInspector], cases 41 FIX and 59), a
// driver with cleanup in IsLocked switched on ([CleanupHarness], case 41
// FIX) and a driver whose network is slowed down ([LatencyInjector], cases
// 94 FIX and 97). A harness implements those it can; the dependent case (or
// nested subtest) is skipped with a message naming the interface when it is
// missing or its method returns an error matching errors.ErrUnsupported;
// so are cases W09 and W10 without a driver that cannot subscribe to
// wake-ups ([UnheardDriverOpener]). [DriverOpener] is the exception: without it,
// the cases in which Guards of several processes take turns on one key
// (W04, W05, W09) run their workers on the one driver instead of a driver
// each.
//
// # Timing
//
// Expiry cases sleep on the wall clock. [Options.Timing] holds the
// catalogue's constants; the zero value suits Redis and PostgreSQL, and
// Firestore passes its longer ones. A whole run takes about 2×Timing.Wait
// (5s by default) because cases run concurrently; every blocking call of a
// case runs under a context with a deadline, so a broken driver fails
// instead of hanging.
//
// [CaseIDs] lists the implemented cases.
package conformance
