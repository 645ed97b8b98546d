package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/syncguard/syncguard/driver"
)

func TestOptionValidation(t *testing.T) {
	pool := &pgxpool.Pool{} // never used: validation comes first
	long := strings.Repeat("a", MaxIdentifierLen+1)
	cases := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"defaults", nil, true},
		{"empty names take defaults", []Option{WithTables(Tables{})}, true},
		{"custom", []Option{WithTables(Tables{Locks: "L", Fences: "F", Records: "_r1", Rate: "Rate_2"})}, true},
		{"max length", []Option{WithTables(Tables{Locks: long[:MaxIdentifierLen]})}, true},
		{"too long", []Option{WithTables(Tables{Locks: long})}, false},
		{"leading digit", []Option{WithTables(Tables{Locks: "1locks"})}, false},
		{"dash", []Option{WithTables(Tables{Fences: "fence-counters"})}, false},
		{"quote", []Option{WithTables(Tables{Records: `r"; DROP TABLE x; --`})}, false},
		{"schema-qualified", []Option{WithTables(Tables{Rate: "public.rate"})}, false},
		{"non-ASCII", []Option{WithTables(Tables{Locks: "löcks"})}, false},
		{"same lock and fence", []Option{WithTables(Tables{Locks: "x", Fences: "x"})}, false},
		{"fence equals default lock table", []Option{WithTables(Tables{Fences: DefaultLockTable})}, false},
		{"records equal rate", []Option{WithTables(Tables{Records: "same", Rate: "same"})}, false},
		{"nil option ignored", []Option{nil}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := New(pool, c.opts...)
			if c.ok {
				if err != nil || d == nil {
					t.Fatalf("New = %v, %v; want a driver", d, err)
				}
				d.Close()
			} else if driver.CodeOf(err) != driver.InvalidArgument {
				t.Fatalf("New: %v; want InvalidArgument", err)
			}
			// Setup and Schema validate the same way, before any I/O.
			err = Setup(context.Background(), nil, c.opts...)
			if !c.ok && driver.CodeOf(err) != driver.InvalidArgument {
				t.Errorf("Setup: %v; want InvalidArgument", err)
			}
			if _, err := Schema(c.opts...); (err == nil) != c.ok {
				t.Errorf("Schema: %v; want ok %v", err, c.ok)
			}
		})
	}
	if _, err := New(nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("New(nil): %v; want InvalidArgument", err)
	}
	if err := Setup(context.Background(), nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("Setup(nil pool): %v; want InvalidArgument", err)
	}
}

// TestValidationBeforeIO checks argument validation on a driver whose pool
// is closed: invalid arguments are InvalidArgument, never a pool error.
func TestValidationBeforeIO(t *testing.T) {
	cfg, _ := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	d, err := New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	want := func(what string, err error) {
		t.Helper()
		if driver.CodeOf(err) != driver.InvalidArgument {
			t.Errorf("%s: %v; want InvalidArgument", what, err)
		}
	}
	_, err = d.Acquire(ctx, "", time.Second)
	want("Acquire empty key", err)
	_, err = d.Acquire(ctx, "k", 1500*time.Microsecond)
	want("Acquire fractional ttl", err)
	_, err = d.Release(ctx, "", "bad+id")
	want("Release bad id", err)
	_, err = d.Extend(ctx, "", "AAAAAAAAAAAAAAAAAAAAAA", 0)
	want("Extend zero ttl", err)
	_, err = d.PutRecord(ctx, "n", 0, nil, 0)
	want("PutRecord zero fence", err)
	_, err = d.AllowN(ctx, "k", driver.RateLimit{}, 1)
	want("AllowN zero limit", err)
	_, _, err = d.WatchRelease(ctx, strings.Repeat("x", 600))
	want("WatchRelease long key", err)
	// A valid call reaches the closed pool: ServiceUnavailable.
	_, err = d.IsLocked(ctx, "k")
	if driver.CodeOf(err) != driver.ServiceUnavailable {
		t.Errorf("IsLocked on a closed pool: %v; want ServiceUnavailable", err)
	}
	// A cancelled context is checked before I/O.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = d.Acquire(cctx, "k", time.Second)
	if driver.CodeOf(err) != driver.Aborted || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled ctx: %v; want Aborted wrapping context.Canceled", err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorMapping(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	connectErr := func(err error) error {
		// pgconn.ConnectError has unexported fields; build one through a
		// real failed connect below instead where the type matters.
		return fmt.Errorf("failed to connect: %w", err)
	}
	cases := []struct {
		name string
		err  error
		want driver.Code
	}{
		{"08006 connection failure", pg("08006"), driver.ServiceUnavailable},
		{"08001", pg("08001"), driver.ServiceUnavailable},
		{"08P01 protocol violation (class 08)", pg("08P01"), driver.ServiceUnavailable},
		{"40001 serialization failure", pg("40001"), driver.ServiceUnavailable},
		{"40P01 deadlock", pg("40P01"), driver.ServiceUnavailable},
		{"40003", pg("40003"), driver.ServiceUnavailable},
		{"57P01 admin shutdown", pg("57P01"), driver.ServiceUnavailable},
		{"57P03 cannot connect now", pg("57P03"), driver.ServiceUnavailable},
		{"28P01 bad password", pg("28P01"), driver.AuthFailed},
		{"28000", pg("28000"), driver.AuthFailed},
		{"22001 string too long", pg("22001"), driver.InvalidArgument},
		{"22P02", pg("22P02"), driver.InvalidArgument},
		{"23502 not null", pg("23502"), driver.InvalidArgument},
		{"23505 unique (class 23)", pg("23505"), driver.InvalidArgument},
		{"42P01 undefined table", pg("42P01"), driver.InvalidArgument},
		{"42703 undefined column", pg("42703"), driver.InvalidArgument},
		{"42883 undefined function", pg("42883"), driver.InvalidArgument},
		{"53300 too many connections", pg("53300"), driver.RateLimited},
		{"53100 disk full", pg("53100"), driver.RateLimited},
		{"57014 statement timeout", pg("57014"), driver.NetworkTimeout},
		{"XX000 internal", pg("XX000"), driver.Internal},
		{"42601 syntax", pg("42601"), driver.Internal},
		{"short code", pg("0"), driver.Internal},
		{"wrapped PgError", fmt.Errorf("batch: %w", pg("40P01")), driver.ServiceUnavailable},
		{"closed pool", puddle.ErrClosedPool, driver.ServiceUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, driver.ServiceUnavailable},
		{"connection reset", connectErr(syscall.ECONNRESET), driver.ServiceUnavailable},
		{"DNS", &net.DNSError{Err: "no such host", Name: "nope"}, driver.ServiceUnavailable},
		{"EOF", io.EOF, driver.ServiceUnavailable},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), driver.ServiceUnavailable},
		{"net timeout", &net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, driver.NetworkTimeout},
		{"context canceled", context.Canceled, driver.Aborted},
		{"context deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), driver.NetworkTimeout},
		{"other", errors.New("boom"), driver.Internal},
		{"lock error passes through", driver.NewError(driver.RateLimited, "x"), driver.RateLimited},
	}
	type result struct {
		Code    string
		IsLock  bool
		HasRoot bool
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mapError(context.Background(), c.err)
			var le *driver.LockError
			got := result{IsLock: errors.As(err, &le), HasRoot: errors.Is(err, c.err)}
			if le != nil {
				got.Code = le.Code.String()
			}
			want := result{Code: c.want.String(), IsLock: true, HasRoot: true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mapError(%v) (-want +got):\n%s", c.err, diff)
			}
		})
	}
	if mapError(context.Background(), nil) != nil {
		t.Error("mapError(nil) != nil")
	}
	// An ended context wins over whatever pgx reported, and both stay
	// reachable.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := mapError(ctx, io.ErrUnexpectedEOF)
	if driver.CodeOf(err) != driver.Aborted || !errors.Is(err, context.Canceled) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("mapError(cancelled ctx, EOF) = %v; want Aborted wrapping both", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	err = mapError(dctx, pg("57014"))
	if driver.CodeOf(err) != driver.NetworkTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("mapError(expired ctx, 57014) = %v; want NetworkTimeout wrapping DeadlineExceeded", err)
	}
}

// TestErrorMappingLive provokes real pgx errors.
func TestErrorMappingLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Nothing listens on port 1: a real *pgconn.ConnectError.
	cfg, _ := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	d := newDriver(t, pool)
	_, err = d.IsLocked(ctx, "k")
	var ce *pgconn.ConnectError
	if driver.CodeOf(err) != driver.ServiceUnavailable || !errors.As(err, &ce) {
		t.Errorf("IsLocked against a closed port: %v; want ServiceUnavailable wrapping *pgconn.ConnectError", err)
	}

	db := newTestDB(t, nil)
	// statement_timeout (57014) → NetworkTimeout: an Extend with an
	// injected 2s delay under a 200ms statement_timeout.
	slow := db.newPool(t, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["statement_timeout"] = "200" })
	ds := newDriver(t, slow, func(o *options) { o.extendDelay = 2 * time.Second })
	held, err := newDriver(t, db.pool).Acquire(ctx, "live", time.Minute)
	if err != nil || !held.Acquired {
		t.Fatalf("Acquire = %+v, %v", held, err)
	}
	// (The delay only runs when the statement finds the row.)
	_, err = ds.Extend(ctx, "", held.LockID, time.Second)
	var pe *pgconn.PgError
	if driver.CodeOf(err) != driver.NetworkTimeout || !errors.As(err, &pe) || pe.Code != "57014" {
		t.Errorf("Extend past statement_timeout: %v; want NetworkTimeout wrapping SQLSTATE 57014", err)
	}
	// A missing table (42P01) → InvalidArgument.
	dm := newDriver(t, db.pool, WithTables(Tables{Locks: "no_such_table"}))
	_, err = dm.IsLocked(ctx, "k")
	if driver.CodeOf(err) != driver.InvalidArgument || !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Errorf("IsLocked on a missing table: %v; want InvalidArgument wrapping 42P01", err)
	}
	// In-flight deadline → NetworkTimeout wrapping DeadlineExceeded.
	dd := newDriver(t, db.pool, func(o *options) { o.extendDelay = 2 * time.Second })
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = dd.Extend(tctx, "", held.LockID, time.Second)
	if driver.CodeOf(err) != driver.NetworkTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Extend past its ctx deadline: %v; want NetworkTimeout wrapping DeadlineExceeded", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Extend returned %v after start; want promptly after the 100ms deadline", el)
	}
}

var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func FuzzValidateIdentifier(f *testing.F) {
	for _, s := range []string{"syncguard_locks", "", "_", "1a", "a-b", `a"b`, "löcks", "a b", strings.Repeat("x", 49), "A_9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateIdentifier(s)
		want := identPattern.MatchString(s) && len(s) <= MaxIdentifierLen
		if (err == nil) != want {
			t.Fatalf("ValidateIdentifier(%q) = %v; want ok %v", s, err, want)
		}
		if err != nil {
			if driver.CodeOf(err) != driver.InvalidArgument {
				t.Fatalf("ValidateIdentifier(%q): code %v", s, driver.CodeOf(err))
			}
			return
		}
		// A valid name is quoted verbatim and renders into the schema
		// only inside double quotes.
		if q := quote(s); q != `"`+s+`"` {
			t.Fatalf("quote(%q) = %s", s, q)
		}
		if s == DefaultFenceTable || s == DefaultRecordTable || s == DefaultRateTable {
			return
		}
		sql, err := Schema(WithTables(Tables{Locks: s}))
		if err != nil {
			t.Fatalf("Schema: %v", err)
		}
		if strings.Count(sql, `"`+s+`"`) < 3 || strings.Contains(sql, `"`+DefaultLockTable+`"`) && s != DefaultLockTable {
			t.Fatalf("schema with lock table %q is not rendered as expected", s)
		}
	})
}
