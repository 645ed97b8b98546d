package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// testDSN is the server the tests use (SYNCGUARD_POSTGRES_URL overrides).
func testDSN() string {
	if v := os.Getenv("SYNCGUARD_POSTGRES_URL"); v != "" {
		return v
	}
	return defaultDSN
}

func requireBackends() bool { return os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" }

// needServer skips (or, under SYNCGUARD_REQUIRE_BACKENDS=1, fails) the test
// when the PostgreSQL server is not reachable.
func needServer(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDSN())
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close(ctx)
	}
	if err != nil {
		msg := "PostgreSQL not reachable at " + testDSN() + ": " + err.Error() +
			" (start it, e.g. with scripts/test, or set SYNCGUARD_POSTGRES_URL)"
		if requireBackends() {
			t.Fatal(msg + "; SYNCGUARD_REQUIRE_BACKENDS=1")
		}
		t.Skip(msg)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// adminExec runs sql on a connection of its own to the test server, outside
// any test schema.
func adminExec(ctx context.Context, sql string) error {
	admin, err := pgx.Connect(ctx, testDSN())
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, sql)
	return err
}

// testDB is a fresh schema on the test server with the driver's tables.
type testDB struct {
	schema string
	cfg    *pgxpool.Config // search_path set to schema
	pool   *pgxpool.Pool
}

// newTestDB creates schema sg_<random>, sets it as search_path of a pool
// and runs Setup; everything is dropped when the test ends. mod may adjust
// the pool config.
func newTestDB(t testing.TB, mod func(*pgxpool.Config), opts ...Option) *testDB {
	t.Helper()
	needServer(t)
	ctx := context.Background()
	schema := "sg_" + randHex(6)
	if err := adminExec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := adminExec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	cfg, err := pgxpool.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if mod != nil {
		mod(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := Setup(ctx, pool, opts...); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return &testDB{schema: schema, cfg: cfg, pool: pool}
}

// newPool opens another pool on the same schema (closed at test end).
func (db *testDB) newPool(t testing.TB, mod func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg := db.cfg.Copy()
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

// newTestDriver is newTestDB with the default pool and a driver over it
// built with opts, closed at test end.
func newTestDriver(t testing.TB, opts ...Option) (*testDB, *Driver) {
	t.Helper()
	db := newTestDB(t, nil)
	return db, newDriver(t, db.pool, opts...)
}

// newOwnLockTableDB returns a fresh test schema whose lock table is named
// prefix plus random hex, and the option that names it. The LISTEN
// connection and the NOTIFY channel follow the lock table's name, so other
// tests' listeners in the database neither count for nor get hit by the
// test.
func newOwnLockTableDB(t testing.TB, prefix string) (*testDB, Option) {
	t.Helper()
	tables := WithTables(Tables{Locks: prefix + randHex(4)})
	return newTestDB(t, nil, tables), tables
}

// count returns the number of rows of table in the test schema.
func (db *testDB) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// newDriver builds a driver closed at test end.
func newDriver(t testing.TB, pool *pgxpool.Pool, opts ...Option) *Driver {
	t.Helper()
	d, err := New(pool, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}
