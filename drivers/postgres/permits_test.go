package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/delayproxy"
)

// writeRawPermit stores a permit row directly (default table names) with
// expiry server-now + off and limit lim.
func writeRawPermit(ctx context.Context, pool *pgxpool.Pool, key, id string, fence driver.Fence, lim int, off time.Duration) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	base, _ := baseKey(k)
	_, err = pool.Exec(ctx, `INSERT INTO syncguard_locks_permits (key, permit_id, fence, lim, expires_at_ms, acquired_at_ms)
VALUES ($1, $2, $3, $4, `+nowMsSQL+` + $5::bigint, `+nowMsSQL+` - 1000)`, base, id, int64(fence), lim, off.Milliseconds())
	return err
}

// TestPermitsUnderLoad: 24 goroutines on three drivers with pools of their
// own take permits of two keys (limits 3 and 1) for 4s with a holder count
// in the critical section: never more holders than the limit, the fences
// of each key are unique, and a permit's fence is greater than that of
// every permit of its key released before its acquisition began. With the advisory lock left out of the
// acquire batch (the statement alone, whose snapshot misses permits
// committed while it waited), this test finds more holders than the limit.
func TestPermitsUnderLoad(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	var ds []*Driver
	for range 3 {
		ds = append(ds, newDriver(t, db.newPool(t, func(c *pgxpool.Config) { c.MaxConns = 8 })))
	}
	limits := []int{3, 1}
	const goroutines = 24
	const duration = 4 * time.Second
	var (
		inside   [2]atomic.Int64
		most     [2]atomic.Int64
		entries  atomic.Int64
		mu       sync.Mutex
		seen     = [2]map[driver.Fence]bool{{}, {}}
		released [2]driver.Fence // the greatest fence released so far
	)
	ctx := t.Context()
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			d, ki := ds[g%len(ds)], g%len(limits)
			key := fmt.Sprintf("sem-load:%d", ki)
			for time.Now().Before(deadline) && !t.Failed() {
				mu.Lock()
				before := released[ki]
				mu.Unlock()
				r, err := d.AcquirePermit(ctx, key, limits[ki], 5*time.Second)
				if err != nil {
					t.Errorf("AcquirePermit: %v", err)
					return
				}
				if !r.Acquired {
					time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
					continue
				}
				n := inside[ki].Add(1)
				for m := most[ki].Load(); n > m && !most[ki].CompareAndSwap(m, n); m = most[ki].Load() {
				}
				mu.Lock()
				if seen[ki][r.Fence] {
					t.Errorf("key %d: fence %v handed out twice", ki, r.Fence)
				}
				seen[ki][r.Fence] = true
				if r.Fence <= before {
					t.Errorf("key %d: fence %v acquired after fence %v was released", ki, r.Fence, before)
				}
				mu.Unlock()
				entries.Add(1)
				time.Sleep(300 * time.Microsecond)
				inside[ki].Add(-1)
				rr, err := d.ReleasePermit(ctx, key, r.LockID)
				if err != nil || !rr.OK {
					t.Errorf("ReleasePermit = %+v, %v", rr, err)
					return
				}
				mu.Lock()
				released[ki] = max(released[ki], r.Fence)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d entries; most holders at once: %d (limit %d), %d (limit %d)",
		entries.Load(), most[0].Load(), limits[0], most[1].Load(), limits[1])
	for ki, lim := range limits {
		if m := most[ki].Load(); m > int64(lim) {
			t.Errorf("key %d: %d holders at once; limit %d", ki, m, lim)
		}
	}
	if entries.Load() < 10 {
		t.Errorf("only %d entries", entries.Load())
	}
}

// TestPermitBoundaryRace: the extension of a permit at the end of its
// tolerance window (limit 1), which holds the permit's row lock for 4ms
// before it commits, races an acquisition of the key. Never may both
// succeed: the acquisition's pruning waits for the row lock and re-checks
// the expiry on the newest row version, and counts every row it did not
// delete. (Judging liveness from the snapshot's expiry with the clock read
// after that wait instead makes this test find both succeeding.)
func TestPermitBoundaryRace(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, func(c *pgxpool.Config) { c.MaxConns = 12 })
	ext := newDriver(t, db.pool, func(o *options) { o.permitExtendHold = 4 * time.Millisecond })
	acq := newDriver(t, db.pool)
	runBoundaryRaces(t, boundaryRace{
		what: "ExtendPermit", prefix: "prace", workers: 4, perWorker: 150, // 600 races
		hold: func(ctx context.Context, key, old string, off time.Duration) error {
			return writeRawPermit(ctx, db.pool, key, old, 1, 1, off)
		},
		extend: func(ctx context.Context, key, old string) (driver.ExtendResult, error) {
			return ext.ExtendPermit(ctx, key, old, 10*time.Second)
		},
		acquire: func(ctx context.Context, key string) (driver.AcquireResult, error) {
			return acq.AcquirePermit(ctx, key, 1, 10*time.Second)
		},
		holders: func(ctx context.Context, key string) ([]string, error) {
			held, err := acq.Permits(ctx, key)
			ids := make([]string, len(held))
			for i, p := range held {
				ids[i] = p.LockID
			}
			return ids, err
		},
	})
}

// TestPermitSweep: Sweep deletes permits expired by more than the guard
// and leaves the others; an acquisition prunes the expired permits of its
// key at once; a Sweep on a database without the permit table (Setup not
// yet run after an upgrade) still works.
func TestPermitSweep(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t)
	ctx := context.Background()
	for i, off := range []time.Duration{-10 * time.Second, -2500 * time.Millisecond, -1500 * time.Millisecond, time.Minute} {
		if err := writeRawPermit(ctx, db.pool, "psweep", driver.NewLockID(), driver.Fence(i+1), 5, off); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || db.count(t, "syncguard_locks_permits") != 2 {
		t.Errorf("Sweep deleted %d rows, left %d permits; want 2 deleted (−10s, −2.5s), 2 left", n, db.count(t, "syncguard_locks_permits"))
	}
	// The acquisition prunes the one within the guard, keeps the live one.
	r, err := d.AcquirePermit(ctx, "psweep", 5, time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("AcquirePermit = %+v, %v", r, err)
	}
	if got := db.count(t, "syncguard_locks_permits"); got != 2 {
		t.Errorf("%d permits after an acquisition; want 2 (the live one and the new one)", got)
	}
	if _, err := db.pool.Exec(ctx, `DROP TABLE syncguard_locks_permits`); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sweep(ctx); err != nil {
		t.Errorf("Sweep without the permit table: %v", err)
	}
	if _, err := d.AcquirePermit(ctx, "psweep", 5, time.Minute); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("AcquirePermit without the permit table: %v; want InvalidArgument (42P01)", err)
	}
}

// TestPermitTablesValidation: no table may be named like the lock table's
// permit table.
func TestPermitTablesValidation(t *testing.T) {
	t.Parallel()
	_, err := Schema(WithTables(Tables{Locks: "l", Rate: "l_permits"}))
	if driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("Schema with Rate = <Locks>_permits: %v; want InvalidArgument", err)
	}
	s, err := Schema(WithTables(Tables{Locks: "MyLocks"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"MyLocks_permits" (`, `"MyLocks_permits_idx"`} {
		if !strings.Contains(s, want) {
			t.Errorf("Schema lacks %s", want)
		}
	}
}

// TestPermitCancelledInFlight: an AcquirePermit whose context ends while
// its reply is in flight (200ms each way, QueryExecModeExec so that the
// request is one round trip that commits) leaves no permit behind: the
// driver releases the permit ID in the background.
func TestPermitCancelledInFlight(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	p, err := delayproxy.Start(net.JoinHostPort(db.cfg.ConnConfig.Host, strconv.Itoa(int(db.cfg.ConnConfig.Port))), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	slow := newDriver(t, db.newPool(t, func(c *pgxpool.Config) {
		c.ConnConfig.Host, c.ConnConfig.Port = "127.0.0.1", p.Port()
		c.ConnConfig.Fallbacks = nil
		c.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}))
	direct := newDriver(t, db.pool)
	ctx := t.Context()
	if err := slow.Pool().Ping(ctx); err != nil { // a connection, so that only the batch is in flight
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := slow.AcquirePermit(cctx, "inflight", 1, time.Minute); driver.CodeOf(err) != driver.NetworkTimeout {
		t.Fatalf("AcquirePermit with its reply in flight: %v; want NetworkTimeout", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		held, err := direct.Permits(ctx, "inflight")
		if err != nil {
			t.Fatal(err)
		}
		if len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("permits 5s after the cancelled AcquirePermit: %+v; want none", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// It was granted: its fence counter exists.
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM syncguard_fence_counters`).Scan(&n); err != nil || n != 1 {
		t.Errorf("fence counters = %d, %v; want 1 (the permit was granted, then released)", n, err)
	}
}
