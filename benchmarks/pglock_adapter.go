// The cirello.io/pglock adapter: the released module (v1.16.2, from the Go
// module proxy), over database/sql with lib/pq as its README shows.

package benchmarks

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"cirello.io/pglock"
	_ "github.com/lib/pq" // pglock.New accepts lib/pq connections only
)

// pglockLocker runs cirello.io/pglock as its documentation recommends:
// pglock.New over database/sql with lib/pq (its "ratified" driver), the lock
// table created by the client itself, a lease of LockTTL (as every adapter)
// kept alive by heartbeats every pglock.DefaultHeartbeatFrequency (5 s, a
// sixth of the lease: pglock asks for at least 2×, recommends 4×).
//
// Each Locker of a run uses one table of its own namespace (created with
// TryCreateTable, pglock's "CreateTable if it does not exist"; dropped on
// Close), so runs do not see each other's rows.
//
// Lock is AcquireContext, which waits with pglock's own policy: when the
// key is held it sleeps a whole lease duration (30 s here) before trying
// again, and it retries serialization failures (its transactions are
// SERIALIZABLE) after one heartbeat period (5 s); both waits end with ctx.
// TryLock is AcquireContext with FailIfLocked (one attempt; a serialization
// failure is still retried as above). Every acquisition starts a heartbeat
// goroutine that refreshes the lease at once and then every 5 s; Unlock is
// ReleaseContext, which stops it first. The pool has 16 connections, as the
// pgx pools of the other PostgreSQL adapters, all kept idle between uses.
type pglockLocker struct {
	db    *sql.DB
	c     *pglock.Client
	table string
}

// pglockTable is the lock table of namespace ns: a valid, unquoted
// identifier short enough for pglock's "<table>_rvn" sequence.
func pglockTable(ns string) string {
	var b strings.Builder
	b.WriteString("pglock_")
	for _, r := range strings.ToLower(ns) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	t := b.String()
	if len(t) > 58 {
		t = t[:58]
	}
	return t
}

func newPGLock(ns string) (Locker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("postgres", PostgresURL())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	table := pglockTable(ns)
	c, err := pglock.New(db,
		pglock.WithCustomTable(table),
		pglock.WithLeaseDuration(LockTTL),
		pglock.WithHeartbeatFrequency(pglock.DefaultHeartbeatFrequency),
	)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := c.TryCreateTable(); err != nil {
		db.Close()
		return nil, err
	}
	return &pglockLocker{db: db, c: c, table: table}, nil
}

func (l *pglockLocker) unlock(lk *pglock.Lock) Unlock {
	return func(ctx context.Context) error { return l.c.ReleaseContext(ctx, lk) }
}

func (l *pglockLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	lk, err := l.c.AcquireContext(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return l.unlock(lk), nil
}

func (l *pglockLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	lk, err := l.c.AcquireContext(ctx, key, pglock.FailIfLocked())
	if errors.Is(err, pglock.ErrNotAcquired) && ctx.Err() == nil {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return l.unlock(lk), true, nil
}

// Close drops the run's table (the other Lockers of a contended run share
// it, hence IF EXISTS) and closes the pool.
func (l *pglockLocker) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = l.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+l.table)
	l.db.Close()
}
