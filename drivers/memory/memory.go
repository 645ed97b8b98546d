// Package memory is the in-process SyncGuard driver and the embedded
// default: it needs no server and no configuration.
//
// A [Driver] keeps all state — locks, fence counters, fenced records and
// rate-limit state — in the memory of one process and implements the whole
// driver contract ([driver.Backend]) together with the optional
// [driver.ReleaseWatcher], [driver.HandoffWatcher] and
// interfaces. It is production-usable for programs
// that run as a single process: goroutines of one service, command-line
// tools, single-instance jobs, and tests. It does not coordinate separate
// processes, and its state ends with the process.
//
// Waiters of a [syncguard.Guard] queue per key, first come, first served:
// a release grants the key to the oldest waiter and wakes only that one
// (see [Driver.WatchHandoff]), so a releaser that comes straight back
// cannot starve the others.
//
// # Guarantees
//
// Every operation is one atomic step under a mutex (state is sharded by key,
// so independent keys do not contend). The time authority is the process
// clock ([time.Now], or the function given to [WithClock]), read once per
// operation inside that step; expiry follows [driver.IsLive], so a lock
// stays blocked for [driver.Tolerance] after its expiry. Fences of a key
// strictly increase over all acquisitions of that key, across release,
// expiry and cleanup; floored by the clock ([driver.FenceFloor]), they
// keep increasing in a new Driver or process too, as long as the clock does
// not go back.
//
// # Memory
//
// Expired lock data, expired records and spent rate state are deleted lazily
// with amortised cost: each shard keeps min-heaps by expiry, and every write
// removes a few entries that are past their deadline (locks only once they
// are more than [driver.CleanupGuardMs] past expiry). Sweeping never
// changes the result of a lookup. A key's entry (its fence counter) is
// deleted once it holds no lock and no waiters and the fence floor has
// passed its fence by [driver.FenceMarginMs], so memory follows the live
// locks, not every key ever locked.
package memory

import (
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// Compile-time checks of the interfaces *Driver implements.
var (
	_ driver.Driver[Capabilities] = (*Driver)(nil)
	_ driver.Backend              = (*Driver)(nil)
	_ driver.ReleaseWatcher       = (*Driver)(nil)
	_ driver.HandoffWatcher       = (*Driver)(nil)
	_ driver.PermitStore          = (*Driver)(nil)
)

// Capabilities is the capability type of the memory driver: fencing
// tokens, one time authority (the process that holds all state) and
// first-come-first-served hand-off. It lacks [driver.CrossProcess]: its
// locks exclude the goroutines of one process only.
type Capabilities struct {
	driver.WithFencing
	driver.WithServerTime
	driver.WithFairHandoff
}

// Name returns "memory".
func (Capabilities) Name() string { return "memory" }

// Option configures a [Driver]; pass options to [New].
type Option func(*options)

type options struct {
	clock             func() time.Time
	cleanupInIsLocked bool
	logger            *slog.Logger
}

// WithClock sets the driver's time authority, called once per operation.
// The default is [time.Now]. Tests inject a fake clock to control expiry
// deterministically. A nil clock makes [New] panic.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.clock = now }
}

// WithCleanupInIsLocked enables opportunistic cleanup in IsLocked (default
// false): when IsLocked finds a lock expired by more than
// [driver.CleanupGuardMs], it deletes that lock's data in the same atomic
// step. The result of IsLocked and the key's fence counter are never
// affected.
func WithCleanupInIsLocked(enabled bool) Option {
	return func(o *options) { o.cleanupInIsLocked = enabled }
}

// WithLogger sets the logger for the warning logged when a key's fence
// counter passes [driver.FenceWarn]. The warning carries the key's
// [driver.HashKey], never the raw key. nil (the default) selects
// [slog.Default] at the time of logging.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// shardCount is the number of lock/record/rate shards and of lock-ID index
// shards. It must be a power of two.
const shardCount = 64

// cacheLinePad separates the mutexes of neighbouring shards.
type cacheLinePad [64]byte

// shard holds the state of all names that hash to it: locks and fence
// counters, fenced records, rate state and release watchers.
type shard struct {
	mu      sync.Mutex
	keys    map[string]*keyState    // lock and fence state by normalised key
	records map[string]*recordEntry // fenced records by normalised name
	rates   map[string]*rateEntry   // GCRA state by normalised key
	permits map[string]*permitSet   // semaphore state by normalised key
	watch   map[string][]*watcher   // release watchers by normalised key
	pwatch  map[string][]*watcher   // permit release watchers by normalised key
	lockExp minHeap[*keyState]      // held locks by expiry (ms)
	keepExp minHeap[*keepEntry]     // key states by when their fence counter may go (ms)
	recExp  minHeap[*recordEntry]   // records with a TTL by expiry (ms)
	rateExp minHeap[*rateEntry]     // rate state by TAT (ns)
	_       cacheLinePad
}

// idShard maps lock IDs to the key state holding them.
type idShard struct {
	mu  sync.Mutex
	ids map[string]*keyState
	_   cacheLinePad
}

// Driver is the in-process driver. Create it with [New]; the zero value is
// not usable. A Driver is safe for concurrent use by multiple goroutines and
// must not be copied after first use. It starts no goroutines and needs no
// Close.
type Driver struct {
	clock             func() time.Time
	cleanupInIsLocked bool
	logger            *slog.Logger
	seed              maphash.Seed
	shards            [shardCount]shard
	idx               [shardCount]idShard
}

// New returns an empty in-process driver configured by opts. It panics if an
// option is invalid (a nil clock).
func New(opts ...Option) *Driver {
	o := options{clock: time.Now}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.clock == nil {
		panic("memory: WithClock: clock must not be nil")
	}
	d := &Driver{
		clock:             o.clock,
		cleanupInIsLocked: o.cleanupInIsLocked,
		logger:            o.logger,
		seed:              maphash.MakeSeed(),
	}
	for i := range d.shards {
		sh := &d.shards[i]
		sh.keys = make(map[string]*keyState)
		sh.records = make(map[string]*recordEntry)
		sh.rates = make(map[string]*rateEntry)
		sh.permits = make(map[string]*permitSet)
		sh.watch = make(map[string][]*watcher)
		sh.pwatch = make(map[string][]*watcher)
	}
	for i := range d.idx {
		d.idx[i].ids = make(map[string]*keyState)
	}
	return d
}

// Capabilities returns the driver's capability value.
func (d *Driver) Capabilities() Capabilities { return Capabilities{} }

// shardFor returns the shard of a normalised key or record name.
func (d *Driver) shardFor(name string) *shard {
	return &d.shards[maphash.String(d.seed, name)&(shardCount-1)]
}

// idShardFor returns the index shard of a lock ID.
func (d *Driver) idShardFor(lockID string) *idShard {
	return &d.idx[maphash.String(d.seed, lockID)&(shardCount-1)]
}

// now reads the time authority once and returns it in Unix milliseconds and
// nanoseconds.
func (d *Driver) now() (ms, ns int64) {
	t := d.clock()
	return t.UnixMilli(), t.UnixNano()
}

// lockShard locks the shard of the key or name k and reads the clock
// under that lock, as every operation on k starts. The caller unlocks
// sh.mu.
func (d *Driver) lockShard(k string) (sh *shard, nowMs, nowNs int64) {
	sh = d.shardFor(k)
	sh.mu.Lock()
	nowMs, nowNs = d.now()
	return sh, nowMs, nowNs
}
