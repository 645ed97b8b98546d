// Package pgfence fences writes to PostgreSQL tables with SyncGuard
// fencing tokens, so that a lock holder whose lease expired behind its back
// cannot overwrite the work of the holder that came after it.
//
// The idea fits in one statement: keep a fence column next to the data and
// make every write conditional on it, in the same statement that writes:
//
//	UPDATE accounts SET balance = $2, fence = $1
//	WHERE id = $3 AND fence <= $1
//
// PostgreSQL evaluates the condition and the write atomically per row, so
// a write carrying an older fence than the stored one changes nothing. The
// helpers here build such statements and turn "no row changed" into an
// error matching [syncguard.ErrStaleFence]:
//
//   - [Table.Upsert] inserts or updates a row of your own table by key.
//   - [Exec] runs a hand-written statement that uses $1 as the fence.
//   - [Store] implements [syncguard.FencedStore] over a (resource, fence,
//     value) table, for use with [syncguard.WithFencedStore].
//
// Fences are ordered per lock key: every write to a row must be made under
// leases of the same lock key. The fence column is a bigint; fences fit
// (they stay below 10^15).
//
// The package needs only github.com/jackc/pgx/v5. *pgx.Conn, *pgxpool.Pool
// and pgx.Tx all satisfy [DB], so a fenced write can be part of your own
// transaction.
package pgfence

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// DB is the part of pgx the helpers use. *pgx.Conn, *pgxpool.Pool and
// pgx.Tx satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Exec runs sql, a statement that uses $1 as the fence and makes its write
// conditional on it (for example "... WHERE id = $2 AND fence <= $1"),
// with fence as $1 and args as $2, $3, …. If the statement changed no row
// it returns an error matching [syncguard.ErrStaleFence]: either a newer
// fence was stored or the row the statement targets does not exist — only
// your statement can tell the two apart.
func Exec(ctx context.Context, db DB, fence syncguard.Fence, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := check(ctx, db, fence); err != nil {
		return pgconn.CommandTag{}, err
	}
	if strings.TrimSpace(sql) == "" {
		return pgconn.CommandTag{}, invalid("pgfence: empty statement")
	}
	tag, err := db.Exec(ctx, sql, append([]any{int64(fence)}, args...)...)
	if err != nil {
		return tag, mapError(ctx, err)
	}
	if tag.RowsAffected() == 0 {
		return tag, fmt.Errorf("%w (fence %s: no row changed)", syncguard.ErrStaleFence, fence)
	}
	return tag, nil
}

// Table describes a table of your own with a fence column.
type Table struct {
	// Name is the table, optionally schema-qualified ("billing.accounts").
	Name string
	// Key lists the columns of a primary key or unique constraint that
	// identifies a row.
	Key []string
	// Fence is the fence column, a bigint (default "fence").
	Fence string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func quoteIdent(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", invalid("pgfence: invalid identifier " + strconv.Quote(name))
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return "", invalid("pgfence: invalid identifier " + strconv.Quote(name))
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// Upsert writes the row given by values (column → value; it must include
// every key column) under fence: it inserts the row if it does not exist
// and otherwise updates its other columns and its fence column, only if
// the stored fence is ≤ fence. All in one statement:
//
//	INSERT INTO t (fence, k, c) VALUES ($1, $2, $3)
//	ON CONFLICT (k) DO UPDATE SET c = EXCLUDED.c, fence = EXCLUDED.fence
//	WHERE t.fence <= EXCLUDED.fence
//
// A refused write returns an error matching [syncguard.ErrStaleFence].
// Invalid names or values are InvalidArgument; database errors are mapped
// to *syncguard.LockError codes.
func (t Table) Upsert(ctx context.Context, db DB, fence syncguard.Fence, values map[string]any) error {
	if err := check(ctx, db, fence); err != nil {
		return err
	}
	sql, args, err := t.upsertSQL(fence, values)
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return mapError(ctx, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w (table %s: fence %s is older than the stored one)", syncguard.ErrStaleFence, t.Name, fence)
	}
	return nil
}

func (t Table) upsertSQL(fence syncguard.Fence, values map[string]any) (string, []any, error) {
	table, err := quoteIdent(t.Name)
	if err != nil {
		return "", nil, err
	}
	fenceCol := t.Fence
	if fenceCol == "" {
		fenceCol = "fence"
	}
	fc, err := quoteIdent(fenceCol)
	if err != nil || strings.Contains(fenceCol, ".") {
		return "", nil, invalid("pgfence: invalid fence column " + strconv.Quote(fenceCol))
	}
	if len(t.Key) == 0 {
		return "", nil, invalid("pgfence: Table.Key must name the key columns")
	}
	if _, ok := values[fenceCol]; ok {
		return "", nil, invalid("pgfence: values must not set the fence column")
	}
	keys := make([]string, 0, len(t.Key))
	for _, k := range t.Key {
		if _, ok := values[k]; !ok {
			return "", nil, invalid("pgfence: values lack key column " + strconv.Quote(k))
		}
		q, err := quoteIdent(k)
		if err != nil || strings.Contains(k, ".") {
			return "", nil, invalid("pgfence: invalid key column " + strconv.Quote(k))
		}
		keys = append(keys, q)
	}
	cols := make([]string, 0, len(values))
	for c := range values {
		cols = append(cols, c)
	}
	slices.Sort(cols) // deterministic statements (prepared-statement cache)
	var (
		names   = []string{fc}
		params  = []string{"$1"}
		updates []string
		args    = []any{int64(fence)}
	)
	for _, c := range cols {
		q, err := quoteIdent(c)
		if err != nil || strings.Contains(c, ".") {
			return "", nil, invalid("pgfence: invalid column " + strconv.Quote(c))
		}
		args = append(args, values[c])
		names = append(names, q)
		params = append(params, "$"+strconv.Itoa(len(args)))
		if !slices.Contains(t.Key, c) {
			updates = append(updates, q+" = EXCLUDED."+q)
		}
	}
	updates = append(updates, fc+" = EXCLUDED."+fc)
	sql := "INSERT INTO " + table + " AS t (" + strings.Join(names, ", ") + ") VALUES (" +
		strings.Join(params, ", ") + ") ON CONFLICT (" + strings.Join(keys, ", ") +
		") DO UPDATE SET " + strings.Join(updates, ", ") + " WHERE t." + fc + " <= EXCLUDED." + fc
	return sql, args, nil
}

// Store is a [syncguard.FencedStore] over a PostgreSQL table with the
// columns resource text primary key, fence bigint and value bytea. Create
// the table with [Store.CreateTable] or your migrations:
//
//	CREATE TABLE syncguard_fenced (
//		resource text PRIMARY KEY,
//		fence    bigint NOT NULL,
//		value    bytea  NOT NULL
//	);
//
// Use it with [syncguard.WithFencedStore]. It is safe for concurrent use if
// db is (a *pgxpool.Pool is; a *pgx.Conn is not).
type Store struct {
	db          DB
	table       Table
	quote       string
	callTimeout time.Duration
}

// DefaultCallTimeout bounds each WriteFenced and ReadFenced of a [Store]
// when [WithCallTimeout] is not given.
const DefaultCallTimeout = 3 * time.Second

// StoreOption configures a [Store]; pass options to [NewStore].
type StoreOption func(*Store)

// WithCallTimeout bounds each WriteFenced and ReadFenced of the Store
// (default [DefaultCallTimeout]), whatever the caller's context: when the
// server does not answer within d (unreachable, or too slow) the call fails
// with NetworkTimeout. The caller's own deadline still applies when it is
// earlier. d ≤ 0 keeps the default. Exec and Table.Upsert, which run your
// statements, are bounded by your context only.
func WithCallTimeout(d time.Duration) StoreOption {
	return func(s *Store) {
		if d > 0 {
			s.callTimeout = d
		}
	}
}

// DefaultStoreTable is the table of a Store created with an empty name.
const DefaultStoreTable = "syncguard_fenced"

// NewStore returns a Store over table (default "syncguard_fenced") on db.
// It fails with InvalidArgument for a nil db or an invalid table name and
// does no I/O.
func NewStore(db DB, table string, opts ...StoreOption) (*Store, error) {
	if db == nil {
		return nil, invalid("pgfence: db must not be nil")
	}
	if table == "" {
		table = DefaultStoreTable
	}
	q, err := quoteIdent(table)
	if err != nil {
		return nil, err
	}
	st := &Store{db: db, table: Table{Name: table, Key: []string{"resource"}, Fence: "fence"}, quote: q, callTimeout: DefaultCallTimeout}
	for _, o := range opts {
		if o != nil {
			o(st)
		}
	}
	return st, nil
}

// CreateTable creates the Store's table if it does not exist.
func (s *Store) CreateTable(ctx context.Context) error {
	if err := driver.CheckContext(ctx); err != nil {
		return err
	}
	_, err := s.db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.quote+
		" (resource text PRIMARY KEY, fence bigint NOT NULL, value bytea NOT NULL)")
	return mapError(ctx, err)
}

// WriteFenced stores value for resource if the stored fence is ≤ fence,
// or returns an error matching [syncguard.ErrStaleFence].
func (s *Store) WriteFenced(ctx context.Context, resource string, fence syncguard.Fence, value []byte) error {
	r, err := driver.NormalizeKey(resource)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	return s.table.Upsert(ctx, s.db, fence, map[string]any{"resource": r, "value": value})
}

// ReadFenced returns the value and fence stored for resource, or nil.
func (s *Store) ReadFenced(ctx context.Context, resource string) (*driver.Record, error) {
	r, err := driver.NormalizeKey(resource)
	if err != nil {
		return nil, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	var (
		fence int64
		value []byte
	)
	err = s.db.QueryRow(ctx, "SELECT fence, value FROM "+s.quote+" WHERE resource = $1", r).Scan(&fence, &value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(ctx, err)
	}
	return &driver.Record{Value: value, Fence: syncguard.Fence(fence)}, nil
}

func check(ctx context.Context, db DB, fence syncguard.Fence) error {
	switch {
	case db == nil:
		return invalid("pgfence: db must not be nil")
	case fence == 0:
		return invalid("pgfence: fence must be positive")
	case fence > 999_999_999_999_999:
		return invalid("pgfence: fence exceeds 15 digits")
	}
	return driver.CheckContext(ctx)
}

func invalid(msg string) error { return driver.NewError(driver.InvalidArgument, msg) }

// mapError maps a pgx error to a *syncguard.LockError (docs/contract.md#errors, the driver's
// PostgreSQL mapping, in short).
func mapError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return driver.ContextError(ctx.Err())
	}
	code := driver.Internal
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe):
		switch {
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "40001", pe.Code == "40P01", pe.Code == "57P01":
			code = driver.ServiceUnavailable
		case pe.Code == "28000", pe.Code == "28P01", pe.Code == "42501":
			code = driver.AuthFailed
		case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "42"):
			code = driver.InvalidArgument
		case strings.HasPrefix(pe.Code, "53"):
			code = driver.RateLimited
		case pe.Code == "57014":
			code = driver.NetworkTimeout
		}
	case pgconn.Timeout(err):
		code = driver.NetworkTimeout
	case pgconn.SafeToRetry(err), errors.As(err, new(net.Error)):
		code = driver.ServiceUnavailable
	}
	return &syncguard.LockError{Code: code, Message: "pgfence: " + err.Error(), Cause: err}
}
