package benchmarks

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/drivers/postgres"
	sgredis "github.com/syncguard/syncguard/drivers/redis"
)

// LockTTL is the TTL every adapter asks for.
const LockTTL = 30 * time.Second

// acquireOpts make Lock wait as long as its context allows: the defaults
// (10 retries within 5 s) would time out under the contended scenario's
// 16-way contention. The backoff starts at the default 100 ms; with a
// release watcher it is only the fallback.
var acquireOpts = []syncguard.AcquireOption{
	syncguard.TTL(LockTTL),
	syncguard.MaxRetries(1 << 20),
	syncguard.Timeout(time.Hour),
	syncguard.AutoExtend(false),
}

// acquirer is what guardLocker locks with: a Guard, or a semaphore whose
// permits are leases too.
type acquirer[C driver.Capabilities] interface {
	Acquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error)
	TryAcquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error)
}

// tryOpts are TryLock's: TTL and AutoExtend, the only ones TryAcquire
// uses (a package-level slice, so that no call allocates one).
var tryOpts = []syncguard.AcquireOption{acquireOpts[0], acquireOpts[3]}

type guardLocker[C driver.Capabilities] struct {
	g     acquirer[C]
	close func()
}

func (l *guardLocker[C]) Lock(ctx context.Context, key string) (Unlock, error) {
	lease, err := l.g.Acquire(ctx, key, acquireOpts...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { _, err := lease.Release(ctx); return err }, nil
}

func (l *guardLocker[C]) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	lease, err := l.g.TryAcquire(ctx, key, tryOpts...)
	if err != nil {
		if errors.Is(err, syncguard.ErrLocked) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return func(ctx context.Context) error { _, err := lease.Release(ctx); return err }, true, nil
}

func (l *guardLocker[C]) Close() { l.close() }

// RueidisOption is the client option of every rueidis-based adapter:
// client-side caching off (SyncGuard's driver does not use it), rueidis's
// defaults otherwise (auto-pipelining of concurrent requests).
func RueidisOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{RedisAddr()}, DisableCache: true}
}

func newSyncGuardRedis(ns string) (Locker, error) {
	return newSyncGuardRedisWith(RueidisOption())
}

// newSyncGuardRedisPooled uses rueidis with auto-pipelining off: each
// request takes a connection of the client's pool.
func newSyncGuardRedisPooled(ns string) (Locker, error) {
	o := RueidisOption()
	o.DisableAutoPipelining = true
	return newSyncGuardRedisWith(o)
}

func newSyncGuardRedisWith(o rueidis.ClientOption) (Locker, error) {
	c, err := rueidis.NewClient(o)
	if err != nil {
		return nil, err
	}
	d, err := sgredis.New(c, sgredis.WithKeyPrefix("sgbench"))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &guardLocker[sgredis.Capabilities]{g: syncguard.New(d), close: func() { d.Close(); c.Close() }}, nil
}

func newSyncGuardPostgres(ns string) (Locker, error) {
	d, pool, err := newPostgresDriver()
	if err != nil {
		return nil, err
	}
	return &guardLocker[postgres.Capabilities]{g: syncguard.New(d), close: func() { d.Close(); pool.Close() }}, nil
}

// newSyncGuardPostgresDriver is the PostgreSQL driver alone, no Guard.
func newSyncGuardPostgresDriver(ns string) (Locker, error) {
	d, pool, err := newPostgresDriver()
	if err != nil {
		return nil, err
	}
	return &driverLocker{d: d, close: func() { d.Close(); pool.Close() }}, nil
}

// newPostgresDriver returns a PostgreSQL driver over a pool of 16
// connections with every statement prepared on connect.
func newPostgresDriver() (*postgres.Driver, *pgxpool.Pool, error) {
	return newPostgresDriverAt(PostgresURL(), false)
}

// newSyncGuardPgBouncer is Guard over the PostgreSQL driver with its pool
// on the PgBouncer (transaction pooling) at $SYNCGUARD_BENCH_PGBOUNCER, as
// docs/postgres.md recommends: QueryExecModeExec, nothing prepared, LISTEN
// on a direct connection to PostgresURL.
func newSyncGuardPgBouncer(ns string) (Locker, error) {
	u := os.Getenv("SYNCGUARD_BENCH_PGBOUNCER")
	if u == "" {
		return nil, errors.New("SYNCGUARD_BENCH_PGBOUNCER is not set (a PgBouncer URL in front of the benchmark database)")
	}
	d, pool, err := newPostgresDriverAt(u, true)
	if err != nil {
		return nil, err
	}
	return &guardLocker[postgres.Capabilities]{g: syncguard.New(d), close: func() { d.Close(); pool.Close() }}, nil
}

func newPostgresDriverAt(url string, bouncer bool) (*postgres.Driver, *pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, nil, err
	}
	var opts []postgres.Option
	if bouncer {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
		direct, err := pgx.ParseConfig(PostgresURL())
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, postgres.WithListenConfig(direct))
	}
	// The tables first, through a pool that prepares nothing: statements
	// prepared on connect need them (a fresh database has none).
	setup, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, nil, err
	}
	err = postgres.Setup(ctx, setup)
	setup.Close()
	if err != nil {
		return nil, nil, err
	}
	cfg.MaxConns = 16
	if !bouncer {
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return postgres.PrepareConn(ctx, c) }
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	d, err := postgres.New(pool, opts...)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return d, pool, nil
}

// The memory driver is in-process: every Locker of one namespace shares
// one driver (the contended scenario's "own client" is then a Guard of
// its own over the shared store).
var (
	memMu      sync.Mutex
	memDrivers = map[string]*memory.Driver{}
)

func newSyncGuardMemory(ns string) (Locker, error) {
	memMu.Lock()
	d := memDrivers[ns]
	if d == nil {
		d = memory.New()
		memDrivers[ns] = d
	}
	memMu.Unlock()
	return &guardLocker[memory.Capabilities]{g: syncguard.New(d), close: func() {}}, nil
}

// driverLocker calls a driver directly, without Guard: the driver's own
// cost, for the serial and parallel scenarios.
type driverLocker struct {
	d     driver.LockStore
	close func()
}

func (l *driverLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	return nil, errors.New("driver adapters have no waiting Lock")
}

func (l *driverLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	r, err := l.d.Acquire(ctx, key, LockTTL)
	if err != nil || !r.Acquired {
		return nil, false, err
	}
	return func(ctx context.Context) error {
		rr, err := l.d.Release(ctx, key, r.LockID)
		if err == nil && !rr.OK {
			err = errors.New("release: not OK")
		}
		return err
	}, true, nil
}

func (l *driverLocker) Close() { l.close() }

func newSyncGuardRedisDriver(ns string) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	d, err := sgredis.New(c, sgredis.WithKeyPrefix("sgbench"))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &driverLocker{d: d, close: func() { d.Close(); c.Close() }}, nil
}

func newSyncGuardMemoryDriver(ns string) (Locker, error) {
	return &driverLocker{d: memory.New(), close: func() {}}, nil
}

// newSyncGuardRedisLockOnly is Guard over the Redis driver's lock-only
// mode (no fences, no lock-ID index; SET NX PX + compare-and-delete).
func newSyncGuardRedisLockOnly(ns string) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	d, err := sgredis.NewLockOnly(c, sgredis.WithKeyPrefix("sgbench"))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &guardLocker[sgredis.LockOnlyCapabilities]{g: syncguard.New(d), close: func() { d.Close(); c.Close() }}, nil
}

func newSyncGuardLockOnlyDriver(ns string) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	d, err := sgredis.NewLockOnly(c, sgredis.WithKeyPrefix("sgbench"))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &driverLocker{d: d, close: func() { d.Close(); c.Close() }}, nil
}
