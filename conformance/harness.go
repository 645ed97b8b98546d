package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Harness gives the suite access to one driver under test. [Run] builds one
// Harness per call (not per case) through its [Factory] and closes it when
// every case has finished, so a harness may be expensive to build (a
// connection pool, an emulator client).
//
// A Harness may also implement the optional interfaces [RawLockWriter],
// [FenceSetter], [StorageInspector], [CleanupHarness] and [LatencyInjector].
// The cases that need one of them skip (naming the interface) when the
// harness lacks it, or when its method returns an error matching
// errors.ErrUnsupported.
type Harness[C driver.Capabilities] interface {
	// Driver returns the driver under test. Its store must be isolated for
	// this run (a key prefix, a database, tables or collections of its own)
	// so that runs never see each other's data; the suite additionally
	// prefixes every key with the case's name and a random per-run token.
	// Every call returns a driver over the same store.
	Driver() driver.Driver[C]
	// Close releases the harness's resources. It may delete the run's
	// namespace. It is called once, after every case has finished.
	Close()
}

// Factory builds the [Harness] of one run of [Run]. ctx bounds the
// construction (two minutes); t is the test that called Run, so a factory
// may call t.Skip when its backend is not available, or register cleanups.
type Factory[C driver.Capabilities] func(ctx context.Context, t *testing.T) (Harness[C], error)

// RawLockWriter is an optional harness interface for the tolerance-boundary
// case (026): it writes lock data directly into the store, bypassing the
// driver's Acquire.
type RawLockWriter interface {
	// WriteRawLock stores a lock of key with the given lock ID and fence
	// whose expiry is the driver's authority-now + expiresAtOffset
	// (negative offsets write an already expired lock). Read "now" from the
	// same time authority the driver uses, as close to the write as
	// possible. The written lock must be visible to every driver operation
	// (Release and Extend by lockID included) and must outlive the check:
	// on Redis, give it a PX well past its logical expiry. key is the key as
	// passed to the driver's methods.
	WriteRawLock(ctx context.Context, key, lockID string, fence syncguard.Fence, expiresAtOffset time.Duration) error
}

// LockIDMinter is an optional harness interface for drivers whose lock IDs
// carry routing information (the Redis driver encodes the key's cluster
// slot in its IDs). When the harness implements it, [RawLockWriter] is given
// IDs minted by LockIDFor instead of [driver.NewLockID].
type LockIDMinter interface {
	// LockIDFor returns a fresh, valid lock ID for a lock of key.
	LockIDFor(key string) string
}

// FenceSetter is an optional harness interface for the fence overflow case
// (045).
type FenceSetter interface {
	// SetFence sets the fence counter of key to value, so that the next
	// acquisition of key receives value+1. key is the key as passed to the
	// driver's methods.
	SetFence(ctx context.Context, key string, value int64) error
}

// StorageInspector is an optional harness interface that looks at the
// store directly, for the cleanup case (041 FIX) and the read-only lookup
// case (059).
type StorageInspector interface {
	// LockDataExists reports whether any lock data of key is physically
	// stored (expired or not): the lock record and, where the driver has
	// one, its lock-ID index entry.
	LockDataExists(ctx context.Context, key string) (bool, error)
	// FenceCounterExists reports whether the fence counter of key is
	// stored.
	FenceCounterExists(ctx context.Context, key string) (bool, error)
}

// CleanupHarness is an optional harness interface for the cleanup case
// (041 FIX).
type CleanupHarness[C driver.Capabilities] interface {
	// DriverWithCleanup returns a driver over the same store as Driver with
	// CleanupInIsLocked switched on. Case 041 FIX makes all its lock
	// operations through this driver and inspects the store through
	// [StorageInspector].
	DriverWithCleanup() driver.Driver[C]
}

// LatencyInjector is an optional harness interface for the mid-flight
// cancellation cases (094 FIX, 097). Drivers without a network (the memory
// driver) do not implement it.
type LatencyInjector[C driver.Capabilities] interface {
	// DriverWithLatency returns a driver over the same store as Driver
	// whose requests and replies are each delayed by d on the wire (for
	// example through a local TCP proxy), so that a context can be cancelled
	// while a request is in flight.
	DriverWithLatency(d time.Duration) driver.Driver[C]
}

// DriverOpener is an optional harness interface for the cases in which
// Guards of several processes take turns on one key (W04, W05). OpenDriver
// returns a new driver over the same store as Driver with connections of
// its own, as another process would have; the harness closes it in Close.
// Without it, those cases share Driver among their workers.
type DriverOpener[C driver.Capabilities] interface {
	OpenDriver(ctx context.Context) (driver.Driver[C], error)
}

// UnheardDriverOpener is an optional harness interface for cases W09 and
// W10.
// OpenUnheardDriver returns a new driver over the same store as Driver,
// with connections of its own, whose wake-up subscriptions fail, as a
// process behind a proxy or connection pooler without pub/sub would have
// (for example a Redis user refused SSUBSCRIBE, or a PostgreSQL driver
// with its wake-ups off); the harness closes it in Close. Without it, W09
// and W10 are skipped.
type UnheardDriverOpener[C driver.Capabilities] interface {
	OpenUnheardDriver(ctx context.Context) (driver.Driver[C], error)
}

// Options configures [Run]. The zero value suits Redis and PostgreSQL.
type Options struct {
	// Timing holds the suite's wall-clock constants; zero fields take the
	// Redis/PostgreSQL defaults.
	Timing Timing
	// ExclusionDuration is how long case 159 runs its goroutines against one
	// key with an overlap detector (default 3s).
	ExclusionDuration time.Duration
	// MaxConcurrentCases bounds how many cases run at once (0: all at
	// once). Emulators that serialise transactions (Firestore's holds a
	// conflicting transaction for up to 2 s) need a bound so that the
	// cases' own timing is not swamped by queueing.
	MaxConcurrentCases int
}

// Timing holds the catalogue's timing constants (see docs/contract.md#running-the-conformance-suite;
// Conventions). Firestore uses Short 2s, Wait 5s, LookupWait 4s and
// ParallelBudget 5s.
type Timing struct {
	// Short is T_short, the "short" lock TTL (default 1000ms).
	Short time.Duration
	// Wait is T_wait, the sleep after which a Short lock is expired past
	// its tolerance, in contention and expiration cases (default 2500ms).
	Wait time.Duration
	// LookupWait is T_wait in lookup and ownership cases (default 2500ms).
	LookupWait time.Duration
	// ParallelBudget bounds the wall time of work on distinct keys that
	// must not be serialised, beyond the work itself (default 500ms).
	ParallelBudget time.Duration
}

// Default timings (Redis and PostgreSQL).
const (
	DefaultShort             = 1000 * time.Millisecond
	DefaultWait              = 2500 * time.Millisecond
	DefaultLookupWait        = 2500 * time.Millisecond
	DefaultParallelBudget    = 500 * time.Millisecond
	DefaultExclusionDuration = 3 * time.Second
)

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Timing.Short, DefaultShort)
	def(&o.Timing.Wait, DefaultWait)
	def(&o.Timing.LookupWait, DefaultLookupWait)
	def(&o.Timing.ParallelBudget, DefaultParallelBudget)
	def(&o.ExclusionDuration, DefaultExclusionDuration)
	return o
}
