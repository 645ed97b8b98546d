package postgres

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard/conformance"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/delayproxy"
	"github.com/syncguard/syncguard/internal/testkit"
)

// harness runs the conformance suite against a fresh schema.
type harness struct {
	testkit.DriverPair[Capabilities, *Driver]
	t  *testing.T
	db *testDB

	// opts configure every driver of the harness (tables, LISTEN
	// connection); names maps the default table names in the harness's
	// own SQL to the harness's (nil: the defaults).
	opts  []Option
	names *strings.Replacer
	// noLatency makes DriverWithLatency return nil (the cases that need
	// it skip): see TestConformanceThroughPgBouncer.
	noLatency bool
}

// sql renders s, written with the default table names, for the harness.
func (h *harness) sql(s string) string {
	if h.names == nil {
		return s
	}
	return h.names.Replace(s)
}

var (
	_ conformance.Harness[Capabilities]             = (*harness)(nil)
	_ conformance.CleanupHarness[Capabilities]      = (*harness)(nil)
	_ conformance.LatencyInjector[Capabilities]     = (*harness)(nil)
	_ conformance.RawLockWriter                     = (*harness)(nil)
	_ conformance.FenceSetter                       = (*harness)(nil)
	_ conformance.StorageInspector                  = (*harness)(nil)
	_ conformance.DriverOpener[Capabilities]        = (*harness)(nil)
	_ conformance.UnheardDriverOpener[Capabilities] = (*harness)(nil)
)

// OpenDriver returns a driver over the same tables with a pool of its own,
// as another process would have. The pool holds at most two connections
// (a worker uses one at a time; the LISTEN connection is extra): the
// server's 100 connections are shared with the other packages' tests, and
// a LISTEN connection refused for lack of them turns a waiter into a
// poller that the hand-off passes over.
func (h *harness) OpenDriver(ctx context.Context) (driver.Driver[Capabilities], error) {
	return h.openDriver(ctx)
}

// OpenUnheardDriver is OpenDriver with wake-ups off (WithWakeups(false)),
// as behind a connection pooler without LISTEN.
func (h *harness) OpenUnheardDriver(ctx context.Context) (driver.Driver[Capabilities], error) {
	return h.openDriver(ctx, WithWakeups(false))
}

func (h *harness) openDriver(ctx context.Context, opts ...Option) (driver.Driver[Capabilities], error) {
	cfg := h.db.cfg.Copy()
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d, err := New(pool, append(slices.Clone(h.opts), opts...)...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	h.Closers.Add(pool.Close, d.Close)
	return d, nil
}

// DriverWithLatency returns a driver whose pool connects through a local
// TCP proxy delaying every chunk by d in each direction.
func (h *harness) DriverWithLatency(d time.Duration) driver.Driver[Capabilities] {
	if h.noLatency {
		return nil
	}
	p, err := delayproxy.Start(net.JoinHostPort(h.db.cfg.ConnConfig.Host, strconv.Itoa(int(h.db.cfg.ConnConfig.Port))), d)
	if err != nil {
		h.t.Errorf("latency proxy: %v", err)
		return nil
	}
	cfg := h.db.cfg.Copy()
	cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", p.Port()
	cfg.ConnConfig.Fallbacks = nil
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		p.Close()
		h.t.Errorf("latency pool: %v", err)
		return nil
	}
	drv, err := New(pool, h.opts...)
	if err != nil {
		pool.Close()
		p.Close()
		return nil
	}
	// Warm up a connection so that only the statement is delayed in flight.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = pool.Ping(ctx)
	cancel()
	h.Closers.Add(p.Close, pool.Close, drv.Close)
	return drv
}

func (h *harness) WriteRawLock(ctx context.Context, key, lockID string, fence driver.Fence, off time.Duration) error {
	return writeRawLockSQL(ctx, h.db.pool, h.sql(rawLockSQL), key, lockID, fence, off)
}

// writeRawLock stores a lock row directly (default table names): expiry
// server-now + off; the fence counter is raised to fence if lower.
func writeRawLock(ctx context.Context, pool *pgxpool.Pool, key, lockID string, fence driver.Fence, off time.Duration) error {
	return writeRawLockSQL(ctx, pool, rawLockSQL, key, lockID, fence, off)
}

// rawLockSQL is writeRawLock's statement.
const rawLockSQL = `WITH f AS (
  INSERT INTO syncguard_fence_counters (fence_key, fence, key_debug) VALUES ($5, $3, $4)
  ON CONFLICT (fence_key) DO UPDATE SET fence = GREATEST(syncguard_fence_counters.fence, EXCLUDED.fence)
  RETURNING 1)
INSERT INTO syncguard_locks (key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key)
SELECT $1, $2, ` + nowMsSQL + ` + $6::bigint, ` + nowMsSQL + ` - 1000, lpad($3::bigint::text, 15, '0'), $4 FROM f
ON CONFLICT (key) DO UPDATE SET lock_id = EXCLUDED.lock_id, expires_at_ms = EXCLUDED.expires_at_ms,
  acquired_at_ms = EXCLUDED.acquired_at_ms, fence = EXCLUDED.fence, user_key = EXCLUDED.user_key`

func writeRawLockSQL(ctx context.Context, pool *pgxpool.Pool, sql, key, lockID string, fence driver.Fence, off time.Duration) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	base, _ := baseKey(k)
	fk, _ := fenceKey(base)
	_, err = pool.Exec(ctx, sql, base, lockID, int64(fence), dbText(k), fk, off.Milliseconds())
	return err
}

func (h *harness) SetFence(ctx context.Context, key string, value int64) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	base, _ := baseKey(k)
	fk, _ := fenceKey(base)
	_, err = h.db.pool.Exec(ctx, h.sql(`INSERT INTO syncguard_fence_counters (fence_key, fence, key_debug)
VALUES ($1, $2, $3) ON CONFLICT (fence_key) DO UPDATE SET fence = EXCLUDED.fence`), fk, value, dbText(k))
	return err
}

func (h *harness) LockDataExists(ctx context.Context, key string) (bool, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return false, err
	}
	base, _ := baseKey(k)
	var ok bool
	err = h.db.pool.QueryRow(ctx, h.sql(`SELECT EXISTS (SELECT 1 FROM syncguard_locks WHERE key = $1)`), base).Scan(&ok)
	return ok, err
}

func (h *harness) FenceCounterExists(ctx context.Context, key string) (bool, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return false, err
	}
	base, _ := baseKey(k)
	fk, _ := fenceKey(base)
	var ok bool
	err = h.db.pool.QueryRow(ctx, h.sql(`SELECT EXISTS (SELECT 1 FROM syncguard_fence_counters WHERE fence_key = $1)`), fk).Scan(&ok)
	return ok, err
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[Capabilities], error) {
		db := newTestDB(t, nil)
		return newHarness(t, db, func(c *pgxpool.Config) {
			c.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error { return PrepareConn(ctx, conn) }
		})
	}, conformance.Options{
		// All cases start at once on a 2-core CI machine that also runs
		// the other drivers' tests; case 011's barrier already proves that
		// the three locks are held at the same time, so its wall-time
		// budget is widened from 500ms to absorb CPU starvation.
		Timing: conformance.Timing{ParallelBudget: 1500 * time.Millisecond},
	})
}

// newHarness returns a harness over db whose drivers, built with opts,
// share a pool of 16 connections, all opened before the cases start; mod,
// if not nil, adjusts the pool's configuration.
func newHarness(t *testing.T, db *testDB, mod func(*pgxpool.Config), opts ...Option) (*harness, error) {
	pool := db.newPool(t, func(c *pgxpool.Config) {
		c.MaxConns = 16
		c.MinConns = 16
		if mod != nil {
			mod(c)
		}
	})
	warmPool(t, pool)
	d, err := New(pool, opts...)
	if err != nil {
		return nil, err
	}
	cd, err := New(pool, append(opts, WithCleanupInIsLocked(true))...)
	if err != nil {
		return nil, err
	}
	return &harness{DriverPair: testkit.DriverPair[Capabilities, *Driver]{D: d, DC: cd}, t: t, db: db, opts: opts}, nil
}

// warmPool opens every connection of pool (running AfterConnect) before the
// timing-sensitive cases start.
func warmPool(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	n := int(pool.Config().MaxConns)
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatalf("warming the pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}
