package reliability

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/postgres"
)

// The crash-free PostgreSQL cases again, with every statement going
// through PgBouncer in transaction-pooling mode (SYNCGUARD_PGBOUNCER_URL,
// started by scripts/test) and configured as docs/postgres.md recommends:
// QueryExecModeExec (nothing prepared) and LISTEN on a direct connection
// to the server. PgBouncer does not carry search_path, so each test has
// tables of its own in the default schema instead of a schema of its own.

// pgBouncerURL is SYNCGUARD_PGBOUNCER_URL; without it the test skips, or
// fails under SYNCGUARD_REQUIRE_BACKENDS=1.
func pgBouncerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("SYNCGUARD_PGBOUNCER_URL")
	if u == "" {
		needBackend(t, "SYNCGUARD_PGBOUNCER_URL is not set (scripts/test starts PgBouncer in transaction-pooling mode and sets it)")
	}
	return u
}

// pgTables are the tables of prefix (the worker's -pg-tables names them
// alike: reliability/internal/worker PGTables).
func pgTables(prefix string) postgres.Tables {
	return postgres.Tables{Locks: prefix + "_locks", Fences: prefix + "_fences", Records: prefix + "_records", Rate: prefix + "_rate"}
}

// bouncerSetup creates tables of their own through PgBouncer (dropped
// when t ends, directly) and returns their prefix and the options every
// driver of the test needs: the tables, and LISTEN on the direct server
// dsn.
func bouncerSetup(t *testing.T, bouncer, dsn string) (prefix string, opts []postgres.Option) {
	t.Helper()
	prefix = "pbrel" + token()
	tables := pgTables(prefix)
	lc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	opts = []postgres.Option{postgres.WithTables(tables), postgres.WithListenConfig(lc)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join([]string{
			tables.Locks, tables.Locks + "_waiters", tables.Fences, tables.Records, tables.Rate}, ", "))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := postgres.Setup(ctx, bouncerPool(t, bouncer, nil), opts...); err != nil {
		needBackend(t, "Setup through PgBouncer at %s: %v", bouncer, err)
	}
	return prefix, opts
}

// bouncerPool opens a pool on PgBouncer in QueryExecModeExec, closed when
// t ends.
func bouncerPool(t testing.TB, bouncer string, mod func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(bouncer)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	if mod != nil {
		mod(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func bouncerDriver(t testing.TB, pool *pgxpool.Pool, opts []postgres.Option) *postgres.Driver {
	t.Helper()
	d, err := postgres.New(pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestHistoryPostgresPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, dsn := pgBouncerURL(t), pgDSN()
	prefix, opts := bouncerSetup(t, bouncer, dsn)
	d := bouncerDriver(t, bouncerPool(t, bouncer, nil), opts)
	cfg := defaultConfig()
	cfg.NotApplied = pgNotApplied
	historyRun(t, "postgres via pgbouncer", d, []string{"-driver", "postgres", "-dsn", bouncer,
		"-pg-tables", prefix, "-listen-dsn", dsn}, cfg)
}

// TestFaultPostgresProxyPgBouncer injects the proxy's faults between the
// clients and PgBouncer.
func TestFaultPostgresProxyPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, dsn := pgBouncerURL(t), pgDSN()
	_, opts := bouncerSetup(t, bouncer, dsn)
	direct := bouncerDriver(t, bouncerPool(t, bouncer, nil), opts)
	u, err := pgxpool.ParseConfig(bouncer)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, net.JoinHostPort(u.ConnConfig.Host, strconv.Itoa(int(u.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(p.addr())
	proxied := bouncerDriver(t, bouncerPool(t, bouncer, func(c *pgxpool.Config) {
		c.ConnConfig.Host = host
		pn, _ := strconv.Atoi(port)
		c.ConnConfig.Port = uint16(pn)
		c.ConnConfig.Fallbacks = nil
		c.MaxConns = 6
	}), opts)
	faultWorkload(t, "postgres+pgbouncer+toxiproxy", proxied, direct, pgNotApplied, func(ctx context.Context) int {
		return runProxyFaults(t, ctx, p, 2)
	})
}

func TestFaultPausedHolderPostgresPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, dsn := pgBouncerURL(t), pgDSN()
	prefix, opts := bouncerSetup(t, bouncer, dsn)
	d := bouncerDriver(t, bouncerPool(t, bouncer, nil), opts)
	pausedHolder(t, "postgres via pgbouncer paused holder", d, []string{"-driver", "postgres", "-dsn", bouncer,
		"-pg-tables", prefix, "-listen-dsn", dsn})
}

func TestSoakPostgresPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, dsn := pgBouncerURL(t), pgDSN()
	_, opts := bouncerSetup(t, bouncer, dsn)
	soak(t, "postgres via pgbouncer", bouncerDriver(t, bouncerPool(t, bouncer, nil), opts))
}

func TestHostileInputPostgresPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer, dsn := pgBouncerURL(t), pgDSN()
	_, opts := bouncerSetup(t, bouncer, dsn)
	d := bouncerDriver(t, bouncerPool(t, bouncer, nil), opts)
	n := hostileRun(t, d, driverCalls)
	n += hostileRun(t, d, guardCalls(syncguard.New(d)))
	n += hostileRun(t, d, primitiveCalls(t, syncguard.New(d), d))
	t.Logf("postgres via pgbouncer: %d hostile calls checked", n)
}
