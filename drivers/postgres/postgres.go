// Package postgres is the SyncGuard driver for PostgreSQL, built on
// github.com/jackc/pgx/v5 and a caller-owned [*pgxpool.Pool].
//
// A [Driver] implements the whole driver contract ([driver.Backend]):
// locks with fencing tokens, fenced records and GCRA rate limiting, plus the
// optional [driver.ReleaseWatcher] (LISTEN/NOTIFY),
// [driver.HandoffWatcher] (a first-come, first-served waiter queue) and
// [driver.PermitStore] (the permits of package semaphore) interfaces.
// Create the tables once with [Setup] (or apply the shipped schema.sql, see
// [Schema]) and then build drivers with [New].
//
// # Guarantees
//
// Every operation is one round trip to the server: a single statement, or
// (Acquire, AllowN, AcquirePermit) a pipelined batch of two statements that
// runs in one implicit transaction. The exception is the Release of a key that Guard
// waiters are queued for: a second statement hands the key over (see
// [Driver.WatchHandoff]). The time authority is the server clock,
// clock_timestamp(), read after the rows involved are locked, so lock waits
// never make an operation judge expiry with a stale time. Acquire takes a
// transaction-scoped advisory lock on the key (the same one upstream
// SyncGuard takes, so mixed deployments serialise); its statement then
// reports contention for a live lock, or locks the expired row FOR UPDATE
// and upserts the new lock on the condition that the newest version of the
// stored row is still expired. Extend and Release lock the row FOR UPDATE
// before reading the clock. An Extend therefore either commits before the
// Acquire's upsert looks at the row (which then fails: contention) or finds
// the row taken over: two holders of one key are impossible.
//
// Acquire and Extend commit synchronously (they wait for the WAL flush).
// Release commits with synchronous_commit off for its own transaction: a
// release lost in a server crash only leaves the lock in place until its
// TTL runs out (liveness), and any later acknowledged Acquire flushes the
// WAL past it, so it can never be lost behind durable state. See
// docs/postgres.md, "Durability".
//
// Fences of a key strictly increase across release, expiry, cleanup and
// server restarts: a fence is max(the counter row + 1, the server clock's
// fence floor, [driver.FenceFloor]), and [Driver.Sweep] deletes counter
// rows the floor has passed by [driver.FenceMarginMs]. A fence above [driver.FenceMax] fails with
// Internal inside the acquiring statement, before anything is written.
//
// # PgBouncer
//
// No session state is used: no session advisory locks, no SET, no temporary
// tables (Release's set_config('synchronous_commit', 'off', true) is
// SET LOCAL: it ends with its transaction). Every statement runs with the
// pool's DefaultQueryExecMode; with PgBouncer in transaction-pooling mode
// configure the pool with
// [pgx.QueryExecModeExec] or [pgx.QueryExecModeSimpleProtocol] (or
// PgBouncer ≥ 1.21 with max_prepared_statements for the caching modes).
// LISTEN needs a session: give [WithListenConfig] a direct connection to the
// server for [Driver.WatchRelease].
package postgres

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	_ "embed"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard/driver"
)

// Compile-time checks of the interfaces *Driver implements.
var (
	_ driver.Driver[Capabilities] = (*Driver)(nil)
	_ driver.Backend              = (*Driver)(nil)
	_ driver.ReleaseWatcher       = (*Driver)(nil)
	_ driver.HandoffWatcher       = (*Driver)(nil)
)

// Capabilities is the capability type of the PostgreSQL driver: fencing
// tokens, the server's clock as time authority, first-come-first-served
// hand-off and state shared by every process.
type Capabilities struct {
	driver.WithFencing
	driver.WithServerTime
	driver.WithFairHandoff
	driver.WithCrossProcess
}

// Name returns "postgres".
func (Capabilities) Name() string { return "postgres" }

// Default table names.
const (
	DefaultLockTable   = "syncguard_locks"
	DefaultFenceTable  = "syncguard_fence_counters"
	DefaultRecordTable = "syncguard_records"
	DefaultRateTable   = "syncguard_rate"
)

// MaxIdentifierLen is the longest accepted table name in bytes; index names
// derived from it must fit PostgreSQL's 63-byte identifier limit.
const MaxIdentifierLen = 48

// Storage key parameters (docs/contract.md#keys): no prefix, 1700-byte limit.
const (
	storageLimit   = 1700
	storageReserve = 0
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateIdentifier reports whether name is an acceptable table name:
// it matches ^[A-Za-z_][A-Za-z0-9_]*$ and is at most [MaxIdentifierLen]
// bytes long. The error is a *driver.LockError with code
// InvalidArgument.
func ValidateIdentifier(name string) error {
	if len(name) > MaxIdentifierLen {
		return driver.NewError(driver.InvalidArgument,
			"table name exceeds 48 bytes")
	}
	if !identRE.MatchString(name) {
		return driver.NewError(driver.InvalidArgument,
			"table name must match ^[A-Za-z_][A-Za-z0-9_]*$")
	}
	return nil
}

// Option configures a [Driver] (and, for the table names, [Setup] and
// [Schema]).
type Option func(*options)

type options struct {
	tables            Tables
	cleanupInIsLocked bool
	logger            *slog.Logger
	wakeups           bool
	listenConfig      *pgx.ConnConfig
	callTimeout       time.Duration

	// extendDelay is a test hook: a server-side sleep inserted into the
	// Extend statement before it locks the row.
	extendDelay time.Duration
	// permitExtendHold is a test hook: a server-side sleep at the end of
	// the ExtendPermit statement, while it holds the permit's row lock.
	permitExtendHold time.Duration
	// waiterLive is a test hook: the liveness of a queued waiter's place
	// (0: waiterLive).
	waiterLive time.Duration
}

// Tables names the driver's four tables. Empty fields take the defaults.
// Two more are named after the lock table: the waiter queue of
// [Driver.WatchHandoff], "<Locks>_waiters", and the semaphore permits of
// [Driver.AcquirePermit], "<Locks>_permits".
type Tables struct {
	Locks   string // default "syncguard_locks"
	Fences  string // default "syncguard_fence_counters"
	Records string // default "syncguard_records"
	Rate    string // default "syncguard_rate"
}

// WithTables sets the table names. Empty fields keep their defaults. Names
// must pass [ValidateIdentifier] and be pairwise different; they are quoted
// in SQL, so they are case-sensitive.
func WithTables(t Tables) Option {
	return func(o *options) {
		if t.Locks != "" {
			o.tables.Locks = t.Locks
		}
		if t.Fences != "" {
			o.tables.Fences = t.Fences
		}
		if t.Records != "" {
			o.tables.Records = t.Records
		}
		if t.Rate != "" {
			o.tables.Rate = t.Rate
		}
	}
}

// WithCleanupInIsLocked enables opportunistic cleanup in IsLocked (default
// false): when IsLocked finds a lock expired by more than
// [driver.CleanupGuardMs], it deletes that row in a fire-and-forget
// statement on a detached context, re-checking the guard atomically. The
// result of IsLocked and the fence counter are never affected.
func WithCleanupInIsLocked(enabled bool) Option {
	return func(o *options) { o.cleanupInIsLocked = enabled }
}

// WithLogger sets the logger for fence warnings (key hash only, never the
// raw key). nil (the default) selects [slog.Default] at logging time.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithWakeups switches the LISTEN/NOTIFY wake-up on or off (default on).
// When on, Release sends a NOTIFY while some driver's LISTEN connection for
// the same lock table is connected to the database (committing a NOTIFY
// takes a database-wide lock, so releases skip it when nobody listens).
// When off, this driver never LISTENs: [Driver.WatchRelease] fails with
// errors.ErrUnsupported wrapped in an Internal error, [Driver.WatchHandoff]
// returns waiters that queue and claim their turn by their attempts alone,
// and a plain Release does not notify. A Release that hands the key to a
// queued waiter still notifies (while someone listens), since that waiter
// may be another process's.
func WithWakeups(enabled bool) Option {
	return func(o *options) { o.wakeups = enabled }
}

// WithListenConfig sets the connection configuration of the dedicated LISTEN
// connection used by [Driver.WatchRelease]. The default is a copy of the
// pool's ConnConfig. With PgBouncer in transaction-pooling mode, point it at
// the PostgreSQL server directly: LISTEN does not work through it.
func WithListenConfig(cfg *pgx.ConnConfig) Option {
	return func(o *options) { o.listenConfig = cfg }
}

// DefaultCallTimeout bounds every operation of the driver when
// [WithCallTimeout] is not given.
const DefaultCallTimeout = 3 * time.Second

// WithCallTimeout bounds every operation of the driver (default
// [DefaultCallTimeout]), whatever the caller's context: an operation whose
// context has no deadline, or a later one, fails with NetworkTimeout after
// d when the server does not answer (unreachable, or too slow), and with
// ServiceUnavailable earlier when connections are refused. It covers
// waiting for a pool connection, dialling and the statements. The caller's
// own deadline still applies when it is earlier. Values ≤ 0 make [New]
// fail with InvalidArgument.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}

func buildOptions(opts []Option) (options, error) {
	o := options{
		tables: Tables{
			Locks: DefaultLockTable, Fences: DefaultFenceTable,
			Records: DefaultRecordTable, Rate: DefaultRateTable,
		},
		wakeups:     true,
		callTimeout: DefaultCallTimeout,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.tables.validate(); err != nil {
		return o, err
	}
	if o.callTimeout <= 0 {
		return o, driver.NewError(driver.InvalidArgument, "call timeout must be positive")
	}
	if o.extendDelay < 0 {
		return o, driver.NewError(driver.InvalidArgument, "negative extend delay")
	}
	return o, nil
}

func (t Tables) validate() error {
	names := []string{t.Locks, t.Fences, t.Records, t.Rate}
	for i, n := range names {
		if err := ValidateIdentifier(n); err != nil {
			return err
		}
		for _, m := range names[:i] {
			if m == n {
				return driver.NewError(driver.InvalidArgument,
					"table names must be different from each other")
			}
		}
	}
	// The lock table's hand-off queue is "<Locks>_waiters", its permit
	// table "<Locks>_permits".
	for _, n := range names[1:] {
		if n == waitersTable(t.Locks) {
			return driver.NewError(driver.InvalidArgument,
				"table names must be different from the lock table's waiter table ("+waitersTable(t.Locks)+")")
		}
		if n == permitsTable(t.Locks) {
			return driver.NewError(driver.InvalidArgument,
				"table names must be different from the lock table's permit table ("+permitsTable(t.Locks)+")")
		}
	}
	return nil
}

//go:embed schema.sql
var schemaSQL string

// Schema returns the DDL that [Setup] runs, rendered with the table names
// of opts (the shipped schema.sql with the default names substituted). Use
// it to feed a migration tool.
func Schema(opts ...Option) (string, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return "", err
	}
	return renderSchema(o.tables), nil
}

func renderSchema(t Tables) string {
	// Quoted identifiers in the file: each default name occurs only inside
	// double quotes, possibly as the prefix of an index name.
	r := strings.NewReplacer(
		DefaultFenceTable, t.Fences,
		DefaultRecordTable, t.Records,
		DefaultRateTable, t.Rate,
		DefaultLockTable, t.Locks,
	)
	return r.Replace(schemaSQL)
}

// Setup creates the driver's tables and indexes if they do not exist. It is
// idempotent and safe to call concurrently (it serialises on a
// transaction-scoped advisory lock). Table names are validated first.
func Setup(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	o, err := buildOptions(opts)
	if err != nil {
		return err
	}
	if pool == nil {
		return driver.NewError(driver.InvalidArgument, "nil pool")
	}
	if err := driver.CheckContext(ctx); err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return mapError(ctx, err)
	}
	defer conn.Release()
	// Simple protocol: the rendered file holds several statements, which
	// run as one implicit transaction.
	if _, err := conn.Conn().PgConn().Exec(ctx, renderSchema(o.tables)).ReadAll(); err != nil {
		return mapError(ctx, err)
	}
	return nil
}

// Driver is the PostgreSQL driver. Create it with [New]. It is safe for
// concurrent use by multiple goroutines. Call [Driver.Close] when done: it
// stops the LISTEN connection and waits for background cleanups; it does
// not close the pool.
type Driver struct {
	pool   *pgxpool.Pool
	opts   options
	q      queries
	logger *slog.Logger

	bgMu     sync.Mutex
	bgClosed bool
	bg       sync.WaitGroup // fire-and-forget statements
	bgCtx    context.Context
	bgStop   context.CancelFunc

	lis *listener

	handedMu sync.Mutex
	handed   map[string]struct{} // lock IDs taken by hand-off waiters (see markContended)

	seenMu sync.Mutex
	seen   bool      // a listener of the lock table was connected at seenAt
	seenAt time.Time // when the last listener probe was sent (zero: never)
	// probeAt is when the newest probe still awaited was sent (zero: none).
	probeAt time.Time

	closeOnce sync.Once
}

// New returns a driver over pool, configured by opts. It fails with
// InvalidArgument for a nil pool or an invalid option (table names that
// fail [ValidateIdentifier] or are not different). It does no I/O: run
// [Setup] once before use.
func New(pool *pgxpool.Pool, opts ...Option) (*Driver, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, driver.NewError(driver.InvalidArgument, "nil pool")
	}
	d := &Driver{pool: pool, opts: o, q: buildQueries(o), logger: o.logger, handed: map[string]struct{}{}}
	d.bgCtx, d.bgStop = context.WithCancel(context.Background())
	d.lis = newListener(d)
	return d, nil
}

// Capabilities returns the driver's capability value.
func (d *Driver) Capabilities() Capabilities { return Capabilities{} }

// Pool returns the pool the driver was built with (the escape hatch to
// pgx).
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Close stops the LISTEN connection and waits for fire-and-forget
// statements (cleanups, compensating releases; at most 5s each) to end. It
// is idempotent.
// It does not close the pool. Operations after Close still work, but
// WatchRelease fails.
func (d *Driver) Close() {
	d.closeOnce.Do(func() {
		d.lis.close()
		d.bgMu.Lock()
		d.bgClosed = true
		d.bgMu.Unlock()
		// Let running statements finish (each has its own deadline).
		d.bg.Wait()
		d.bgStop()
	})
	d.bg.Wait()
}

// bound returns ctx bounded by the call timeout (WithCallTimeout).
// A nil ctx is passed through, for the operation's own check to reject.
func (d *Driver) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		return nil, func() {}
	}
	return context.WithTimeout(ctx, d.opts.callTimeout)
}

// goBackground runs fn on a detached context bounded by timeout, tracked
// for Close.
func (d *Driver) goBackground(timeout time.Duration, fn func(ctx context.Context)) {
	d.bgMu.Lock()
	if d.bgClosed {
		d.bgMu.Unlock()
		return
	}
	d.bg.Add(1)
	d.bgMu.Unlock()
	go func() {
		defer d.bg.Done()
		ctx, cancel := context.WithTimeout(d.bgCtx, timeout)
		defer cancel()
		fn(ctx)
	}()
}

func (d *Driver) warnFence(ctx context.Context, key string, f driver.Fence) {
	driver.WarnFence(ctx, d.logger, "postgres", key, f)
}

// errUnsupported marks a disabled optional feature.
var errUnsupported = errors.ErrUnsupported

// PrepareConn prepares the driver's statements on conn (table names from
// opts), so that the first operations on a new connection skip parsing and
// planning. Use it as a pool's AfterConnect hook with the caching query
// execution modes (pgx's default); it is useless with
// QueryExecModeExec/SimpleProtocol and must not be used through PgBouncer
// in transaction-pooling mode, where prepared statements do not stick to a
// client connection. The permit statements are left to pgx's statement
// cache (prepared on first use), so that PrepareConn also works on a
// database whose permit table Setup has not created yet.
func PrepareConn(ctx context.Context, conn *pgx.Conn, opts ...Option) error {
	o, err := buildOptions(opts)
	if err != nil {
		return err
	}
	q := buildQueries(o)
	for _, sql := range []string{
		q.advisory, q.acquire, q.acquireQueued, q.leave, q.release, q.releaseHandoff, q.extend, q.isLocked, q.cleanup, q.lookupKey, q.lookupID,
		q.putRecord, q.recordFence, q.getRecord, q.deleteRecord, q.rateLock, q.allow, q.resetRate,
	} {
		// Named after its SQL, so that pgx finds it for Query and batches.
		if _, err := conn.Prepare(ctx, sql, sql); err != nil {
			return mapError(ctx, err)
		}
	}
	return nil
}
