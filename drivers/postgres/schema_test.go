package postgres

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard/driver"
)

// schemaDump lists the columns and indexes of a schema, with the schema
// name removed, in a stable order.
func schemaDump(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	rows, err := pool.Query(ctx, `SELECT table_name, column_name, data_type, is_nullable, COALESCE(column_default, '')
FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b, c, d, e string
		if err := rows.Scan(&a, &b, &c, &d, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{"column", a, b, c, d, e}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, "index "+a+" "+strings.ReplaceAll(b, schema+".", "S."))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaFileMatchesSetup applies the shipped schema.sql (read from
// disk, as a user or migration tool would) to one fresh schema and Setup to
// another, and compares information_schema and pg_indexes. Setup is then
// run again (idempotent) and concurrently.
func TestSchemaFileMatchesSetup(t *testing.T) {
	t.Parallel()
	viaSetup := newTestDB(t, nil) // runs Setup
	viaFile := newTestDB(t, nil)  // runs Setup too: drop and re-create from the file
	ctx := context.Background()
	file, err := os.ReadFile("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := viaFile.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Conn().PgConn().Exec(ctx, `DROP TABLE syncguard_locks, syncguard_locks_waiters, syncguard_locks_permits, syncguard_fence_counters, syncguard_records, syncguard_rate;
BEGIN;
`+string(file)+`
COMMIT;`).ReadAll()
	conn.Release()
	if err != nil {
		t.Fatalf("applying schema.sql: %v", err)
	}
	want := schemaDump(t, viaFile.pool, viaFile.schema)
	if len(want) < 20 {
		t.Fatalf("schema.sql produced only %d columns and indexes: %v", len(want), want)
	}
	got := schemaDump(t, viaSetup.pool, viaSetup.schema)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Setup and schema.sql differ (-file +Setup):\n%s", diff)
	}
	// Idempotent, also when run concurrently.
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- Setup(ctx, viaSetup.pool) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("repeated Setup: %v", err)
		}
	}
	if diff := cmp.Diff(want, schemaDump(t, viaSetup.pool, viaSetup.schema)); diff != "" {
		t.Errorf("repeated Setup changed the schema:\n%s", diff)
	}
	// Schema() is the same text with the names substituted.
	s, err := Schema()
	if err != nil || s != string(file) {
		t.Errorf("Schema() differs from schema.sql (err %v)", err)
	}
}

// TestCustomTableNames runs the basic operations on custom (mixed-case)
// table names and checks the default tables stay empty.
func TestCustomTableNames(t *testing.T) {
	t.Parallel()
	tables := Tables{Locks: "MyLocks", Fences: "my_fences", Records: "Recs", Rate: "rate_x"}
	db := newTestDB(t, nil, WithTables(tables))
	d := newDriver(t, db.pool, WithTables(tables))
	ctx := context.Background()
	r, err := d.Acquire(ctx, "custom", 30e9)
	if err != nil || !r.Acquired || r.Fence == 0 {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM "MyLocks"`).Scan(&n); err != nil || n != 1 {
		t.Errorf(`rows in "MyLocks" = %d, %v; want 1`, n, err)
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'syncguard_locks'`, db.schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("default lock table exists (%d, %v); want only the custom ones", n, err)
	}
	if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
		t.Errorf("Release = %+v, %v", rr, err)
	}
	if _, err := d.PutRecord(ctx, "rec", 1, []byte("v"), 0); err != nil {
		t.Errorf("PutRecord: %v", err)
	}
	if _, err := d.AllowN(ctx, "rate", driver.RateLimit{Limit: 10, Period: 1e9, Burst: 1}, 1); err != nil {
		t.Errorf("AllowN: %v", err)
	}
	if p, err := d.AcquirePermit(ctx, "custom", 2, 30e9); err != nil || !p.Acquired {
		t.Errorf("AcquirePermit = %+v, %v", p, err)
	}
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM "MyLocks_permits"`).Scan(&n); err != nil || n != 1 {
		t.Errorf(`rows in "MyLocks_permits" = %d, %v; want 1`, n, err)
	}
}
