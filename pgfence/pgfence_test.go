package pgfence_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/drivertest"
	"github.com/syncguard/syncguard/pgfence"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, drivertest.GoleakOptions()...)
}

// Test environment: SYNCGUARD_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable);
// SYNCGUARD_REQUIRE_BACKENDS=1 fails instead of skipping when it is
// unreachable.
func dsn() string {
	if u := os.Getenv("SYNCGUARD_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pool connects and registers its closing.
func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := pgxpool.New(ctx, dsn())
	if err == nil {
		err = p.Ping(ctx)
		if err != nil {
			p.Close()
		}
	}
	if err != nil {
		if drivertest.RequireBackends() {
			t.Fatalf("PostgreSQL required but unavailable: %v", err)
		}
		t.Skipf("PostgreSQL unavailable (scripts/test starts it; set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead): %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// table creates a table of a random name with ddl (%s = name) and drops it
// when t ends.
func table(t *testing.T, p *pgxpool.Pool, ddl string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "sgtest_fence_" + hex.EncodeToString(b[:])
	if _, err := p.Exec(context.Background(), "CREATE TABLE "+name+" "+ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
	return name
}

func TestUpsert(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := context.Background()
	name := table(t, p, "(id text PRIMARY KEY, balance int NOT NULL, fence bigint NOT NULL)")
	tbl := pgfence.Table{Name: name, Key: []string{"id"}}
	type row struct {
		Balance int
		Fence   int64
	}
	read := func() row {
		var r row
		if err := p.QueryRow(ctx, "SELECT balance, fence FROM "+name+" WHERE id = 'a'").Scan(&r.Balance, &r.Fence); err != nil {
			t.Fatal(err)
		}
		return r
	}
	steps := []struct {
		fence   syncguard.Fence
		balance int
		stale   bool
		want    row
	}{
		{fence: 5, balance: 100, want: row{100, 5}}, // insert
		{fence: 5, balance: 110, want: row{110, 5}}, // same holder again
		{fence: 7, balance: 250, want: row{250, 7}}, // newer holder
		{fence: 6, balance: 90, stale: true, want: row{250, 7}},
		{fence: 1, balance: 1, stale: true, want: row{250, 7}},
	}
	for i, s := range steps {
		err := tbl.Upsert(ctx, p, s.fence, map[string]any{"id": "a", "balance": s.balance})
		if s.stale != errors.Is(err, syncguard.ErrStaleFence) || (!s.stale && err != nil) {
			t.Errorf("step %d: Upsert = %v, stale want %v", i, err, s.stale)
		}
		if diff := cmp.Diff(s.want, read()); diff != "" {
			t.Errorf("step %d row (-want +got):\n%s", i, diff)
		}
	}
	// Inside a caller's transaction.
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Upsert(ctx, tx, 8, map[string]any{"id": "a", "balance": 300}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != (row{250, 7}) {
		t.Errorf("after rollback: %+v", got)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := context.Background()
	name := table(t, p, "(id int PRIMARY KEY, note text NOT NULL, fence bigint NOT NULL)")
	if _, err := p.Exec(ctx, "INSERT INTO "+name+" VALUES (1, 'init', 3)"); err != nil {
		t.Fatal(err)
	}
	upd := "UPDATE " + name + " SET note = $2, fence = $1 WHERE id = $3 AND fence <= $1"
	if tag, err := pgfence.Exec(ctx, p, 4, upd, "by 4", 1); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("Exec fence 4 = %v, %v", tag, err)
	}
	if _, err := pgfence.Exec(ctx, p, 3, upd, "by 3", 1); !errors.Is(err, syncguard.ErrStaleFence) {
		t.Errorf("Exec fence 3 = %v, want ErrStaleFence", err)
	}
	var note string
	_ = p.QueryRow(ctx, "SELECT note FROM "+name).Scan(&note)
	if note != "by 4" {
		t.Errorf("note = %q", note)
	}
	if _, err := pgfence.Exec(ctx, p, 4, "UPDATE "+name+" SET nope = 1 WHERE fence <= $1"); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("bad column: %v", err)
	}
}

// TestStoreStaleHolder is the FencedWriter proof test with a PostgreSQL
// store and every lock driver: A pauses past its TTL, B acquires and
// writes, A's late write is refused and B's value survives.
func TestStoreStaleHolder(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := context.Background()
	st, err := pgfence.NewStore(p, table(t, p, "(resource text PRIMARY KEY, fence bigint NOT NULL, value bytea NOT NULL)"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			g := d.NewGuard()
			w, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(st))
			if err != nil {
				t.Fatal(err)
			}
			res := "doc:" + d.Name
			a, err := g.Acquire(ctx, res, syncguard.TTL(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := g.Acquire(ctx, res, syncguard.RetryDelay(50*time.Millisecond), syncguard.Backoff(syncguard.BackoffFixed),
				syncguard.MaxRetries(200), syncguard.Timeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := w.Write(ctx, b, res, []byte("B")); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(ctx, a, res, []byte("A")); !errors.Is(err, syncguard.ErrStaleFence) {
				t.Errorf("A's write = %v, want ErrStaleFence", err)
			}
			rec, err := w.Read(ctx, res)
			if err != nil || rec == nil || string(rec.Value) != "B" || rec.Fence != syncguard.FenceOf(b) {
				t.Errorf("Read = %+v, %v", rec, err)
			}
		})
	}
}

// TestStoreConcurrent: concurrent writers with different fences; the
// newest fence always wins, whatever the interleaving.
func TestStoreConcurrent(t *testing.T) {
	t.Parallel()
	p := pool(t)
	ctx := context.Background()
	name := "sgtest_store_" + randHex()
	st, err := pgfence.NewStore(p, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
	if err := st.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for f := 1; f <= 20; f++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.WriteFenced(ctx, "r", syncguard.Fence(f), []byte{byte(f)})
			if err != nil && !errors.Is(err, syncguard.ErrStaleFence) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rec, err := st.ReadFenced(ctx, "r")
	if err != nil || rec == nil || rec.Fence != 20 || rec.Value[0] != 20 {
		t.Errorf("ReadFenced = %+v, %v", rec, err)
	}
	if rec, err := st.ReadFenced(ctx, "absent"); rec != nil || err != nil {
		t.Errorf("absent = %+v, %v", rec, err)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var nilDB pgfence.DB
	var conn *pgx.Conn // never dialled: validation precedes I/O
	db := pgfence.DB(conn)
	for name, call := range map[string]func() error{
		"store nil db":    func() error { _, err := pgfence.NewStore(nilDB, ""); return err },
		"store bad name":  func() error { _, err := pgfence.NewStore(db, "x; DROP TABLE y"); return err },
		"store 3 parts":   func() error { _, err := pgfence.NewStore(db, "a.b.c"); return err },
		"exec zero fence": func() error { _, err := pgfence.Exec(ctx, db, 0, "SELECT 1"); return err },
		"exec empty":      func() error { _, err := pgfence.Exec(ctx, db, 1, " "); return err },
		"upsert no key":   func() error { return pgfence.Table{Name: "t"}.Upsert(ctx, db, 1, map[string]any{"a": 1}) },
		"upsert lacks key": func() error {
			return pgfence.Table{Name: "t", Key: []string{"id"}}.Upsert(ctx, db, 1, map[string]any{"a": 1})
		},
		"upsert bad col": func() error {
			return pgfence.Table{Name: "t", Key: []string{"id"}}.Upsert(ctx, db, 1, map[string]any{"id": 1, `a"b`: 1})
		},
		"upsert sets fence": func() error {
			return pgfence.Table{Name: "t", Key: []string{"id"}}.Upsert(ctx, db, 1, map[string]any{"id": 1, "fence": 1})
		},
		"upsert bad table": func() error {
			return pgfence.Table{Name: "1t", Key: []string{"id"}}.Upsert(ctx, db, 1, map[string]any{"id": 1})
		},
	} {
		if err := call(); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
