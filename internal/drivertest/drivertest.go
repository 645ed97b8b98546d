// Package drivertest gives the tests of the primitives one list of drivers
// to run against: the memory driver always, and every server-backed driver
// whose service is reachable.
//
// One test body runs on all of them through syncguard.NewFenced, which
// gives every fencing driver the one type *Guard[syncguard.Fenced] — the
// way applications choose a driver at run time.
//
// Environment:
//
//	SYNCGUARD_REDIS_ADDR          Redis single node (default 127.0.0.1:6379)
//	SYNCGUARD_REQUIRE_BACKENDS=1  an unreachable service fails the test
//	                              instead of skipping its driver
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"go.uber.org/goleak"
)

// Named is one driver of the matrix.
type Named struct {
	// Name is the driver's name, for subtest names ("memory", "redis").
	Name string
	// Driver is a fresh driver with its own namespace; its data is deleted
	// when the test ends.
	Driver driver.Backend
	// guard builds a Guard over Driver.
	guard func(opts ...syncguard.Option) *syncguard.Guard[syncguard.Fenced]
}

// NewGuard returns a Guard over the driver, as an application that chose
// it at run time would build it.
func (n Named) NewGuard(opts ...syncguard.Option) *syncguard.Guard[syncguard.Fenced] {
	return n.guard(opts...)
}

// named pairs a concrete fencing driver with its name.
func named[C syncguard.Fenced, D interface {
	driver.Driver[C]
	driver.Backend
}](name string, d D) Named {
	return Named{Name: name, Driver: d, guard: func(opts ...syncguard.Option) *syncguard.Guard[syncguard.Fenced] {
		return syncguard.NewFenced[C](d, opts...)
	}}
}

// FakeCaps is the capability type of [Fake]: test doubles declare every
// guarantee the real drivers they stand in for have.
type FakeCaps struct {
	driver.WithFencing
	driver.WithServerTime
	driver.WithCrossProcess
}

// Name returns "fake".
func (FakeCaps) Name() string { return "fake" }

type fake struct{ driver.Backend }

func (fake) Capabilities() FakeCaps { return FakeCaps{} }

// Fake presents a test double b (a Backend that wraps a real driver to
// inject faults, say) as a driver. Optional interfaces of b's own are not
// forwarded: a Guard over it polls.
func Fake(b driver.Backend) driver.Driver[FakeCaps] { return fake{b} }

// RequireBackends reports whether SYNCGUARD_REQUIRE_BACKENDS=1.
func RequireBackends() bool { return os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" }

// unavailable fails t under SYNCGUARD_REQUIRE_BACKENDS=1 and otherwise
// logs that the driver is skipped.
func unavailable(t testing.TB, name, how string, err error) {
	t.Helper()
	if RequireBackends() {
		t.Fatalf("drivertest: %s required but unavailable: %v (%s)", name, err, how)
	}
	t.Logf("drivertest: skipping %s: %v (%s; set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead)", name, err, how)
}

// Drivers returns the memory driver and every reachable server-backed
// driver, each fresh and isolated (its own key prefix), cleaned up when t
// ends. An unreachable service is skipped with a message, or fails t under
// SYNCGUARD_REQUIRE_BACKENDS=1.
func Drivers(t testing.TB) []Named {
	t.Helper()
	ds := []Named{named[memory.Capabilities]("memory", memory.New())}
	if d, ok := Redis(t); ok {
		ds = append(ds, named[redis.Capabilities]("redis", d))
	}
	if d, ok := Postgres(t); ok {
		ds = append(ds, named[postgres.Capabilities]("postgres", d))
	}
	// Firestore is a module of its own (drivers/firestore) and cannot be
	// imported here. Its own conformance suite covers the contract the
	// primitives build on.
	return ds
}

// RedisAddr returns SYNCGUARD_REDIS_ADDR or 127.0.0.1:6379.
func RedisAddr() string {
	if a := os.Getenv("SYNCGUARD_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis returns a Redis driver with a fresh key prefix on its own client;
// its keys are deleted and the client closed when t ends. ok is false when
// Redis is unreachable (and t was not failed).
func Redis(t testing.TB) (d *redis.Driver, ok bool) {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{RedisAddr()},
		DisableCache: true,
	})
	if err != nil {
		unavailable(t, "redis", "scripts/test starts it; SYNCGUARD_REDIS_ADDR overrides 127.0.0.1:6379", err)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		unavailable(t, "redis", "scripts/test starts it; SYNCGUARD_REDIS_ADDR overrides 127.0.0.1:6379", err)
		return nil, false
	}
	prefix := "sgtest:prim:" + randomHex(6)
	d, err = redis.New(c, redis.WithKeyPrefix(prefix))
	if err != nil {
		c.Close()
		t.Fatalf("drivertest: redis.New: %v", err)
	}
	t.Cleanup(func() {
		d.Close()
		deletePrefix(c, prefix)
		c.Close()
	})
	return d, true
}

// PostgresURL returns SYNCGUARD_POSTGRES_URL or the local test database.
func PostgresURL() string {
	if u := os.Getenv("SYNCGUARD_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Postgres returns a PostgreSQL driver over tables in a fresh schema
// (sg_<random>, set as the pool's search_path), dropped when t ends. ok is
// false when the server is unreachable (and t was not failed).
func Postgres(t testing.TB) (d *postgres.Driver, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const how = "scripts/test starts it; SYNCGUARD_POSTGRES_URL overrides postgres://postgres@127.0.0.1:5432/test"
	admin, err := pgx.Connect(ctx, PostgresURL())
	if err != nil {
		unavailable(t, "postgres", how, err)
		return nil, false
	}
	schema := "sgprim_" + randomHex(6)
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+schema)
	_ = admin.Close(ctx)
	if err != nil {
		t.Fatalf("drivertest: create schema: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatalf("drivertest: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("drivertest: %v", err)
	}
	if err := postgres.Setup(ctx, pool); err != nil {
		pool.Close()
		t.Fatalf("drivertest: postgres.Setup: %v", err)
	}
	d, err = postgres.New(pool)
	if err != nil {
		pool.Close()
		t.Fatalf("drivertest: postgres.New: %v", err)
	}
	t.Cleanup(func() {
		d.Close()
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if admin, err := pgx.Connect(ctx, PostgresURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			_ = admin.Close(ctx)
		}
	})
	return d, true
}

// deletePrefix deletes every key under prefix.
func deletePrefix(c rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, _ := RedisKeys(ctx, c, prefix+":*")
	for _, k := range keys {
		_ = c.Do(ctx, c.B().Del().Key(k).Build()).Error()
	}
}

// RedisKeys returns the keys matching the SCAN pattern match on every node
// of c; a node whose scan fails contributes what it returned before, and
// the first such error is returned.
func RedisKeys(ctx context.Context, c rueidis.Client, match string) ([]string, error) {
	var (
		keys  []string
		first error
	)
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(match).Count(1000).Build()).AsScanEntry()
			if err != nil {
				if first == nil {
					first = err
				}
				break
			}
			keys = append(keys, e.Elements...)
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return keys, first
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// GoleakOptions returns the goleak options for packages that use rueidis
// clients: the client keeps a process-wide coarse clock goroutine, its
// connections' readers end shortly after Close, and a cluster client closes
// the connections of removed nodes after a delay, also after Close.
func GoleakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/redis/rueidis/internal/util.(*coarseClock).tick"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundRead"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	}
}
