package postgres

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/churn"
)

// TestStorageFollowsLiveLocks: 20,000 distinct keys locked and released
// leave one fence counter each until the floor has passed them by
// FenceMarginMs; so do 1,000 keys given a permit each (released, or left
// to expire), whose permit rows go as they are released or once expired;
// a Sweep after that returns every table to its baseline.
func TestStorageFollowsLiveLocks(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t)
	ctx := context.Background()
	rows := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, tb := range []string{"syncguard_locks", "syncguard_fence_counters", "syncguard_records", "syncguard_rate", "syncguard_locks_waiters", "syncguard_locks_permits"} {
			out[tb] = db.count(t, tb)
		}
		return out
	}
	base := rows()
	const n = 20_000
	took, err := churn.Run(ctx, d, "payment:", n, 16)
	if err != nil {
		t.Fatal(err)
	}
	right := rows()
	if right["syncguard_fence_counters"] != base["syncguard_fence_counters"]+n {
		t.Errorf("right after: %v; want %d more fence counters", right, n)
	}
	// Permits: 1,000 keys, every 50th permit left to expire (100ms).
	const np = 1000
	const leftOver = np / 50
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < np; i += 8 {
				ttl := time.Minute
				if i%50 == 0 {
					ttl = 100 * time.Millisecond
				}
				r, err := d.AcquirePermit(ctx, "permit:"+strconv.Itoa(i), 2, ttl)
				if err != nil || !r.Acquired {
					t.Errorf("AcquirePermit = %+v, %v", r, err)
					return
				}
				if ttl == time.Minute {
					if rr, err := d.ReleasePermit(ctx, "permit:"+strconv.Itoa(i), r.LockID); err != nil || !rr.OK {
						t.Errorf("ReleasePermit = %+v, %v", rr, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if got := rows(); got["syncguard_locks_permits"] != base["syncguard_locks_permits"]+leftOver ||
		got["syncguard_fence_counters"] != right["syncguard_fence_counters"]+np {
		t.Errorf("after the permits: %v; want %d permits and %d more fence counters", got, leftOver, np)
	}
	// A sweep keeps the counters of keys locked within the margin.
	for i := range 100 {
		r, err := d.Acquire(ctx, "fresh:"+strconv.Itoa(i), time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		if _, err := d.Release(ctx, "", r.LockID); err != nil {
			t.Fatal(err)
		}
	}
	freshDone := time.Now()
	if _, err := d.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM syncguard_fence_counters WHERE key_debug IN (SELECT left(encode(sha256(convert_to('fresh:' || i, 'UTF8')), 'hex'), 24) FROM generate_series(0, 99) i)`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 100 {
		t.Errorf("a sweep within the margin left %d of the 100 fresh counters; want all", kept)
	}
	time.Sleep(time.Until(freshDone.Add(time.Duration(driver.FenceMarginMs)*time.Millisecond + 200*time.Millisecond)))
	swept, err := d.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := rows()
	t.Logf("%d keys locked and released in %v; rows before %v, right after %v, after the margin and a Sweep (%d deleted) %v",
		n, took.Round(time.Millisecond), base, right, swept, after)
	for tb, want := range base {
		if after[tb] != want {
			t.Errorf("%s: %d rows after the sweep; want the baseline %d", tb, after[tb], want)
		}
	}
}

// TestFenceCounterKeepsNoRawKey is security finding 2: the fence counter
// row outlives the lock, so its debugging column holds HashKey of the key,
// never the key (often a user's e-mail or an idempotency key), on both
// the acquire and the hand-off paths.
func TestFenceCounterKeepsNoRawKey(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t)
	ctx := context.Background()
	key := "user:alice@example.com:caf\u00e9"
	r, err := d.Acquire(ctx, key, 30*time.Second)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	if _, err := d.Release(ctx, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	rows, _ := db.pool.Query(ctx, `SELECT key_debug FROM syncguard_fence_counters`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{driver.HashKey(key)}, got); diff != "" {
		t.Errorf("key_debug (-want +got):\n%s", diff)
	}
}

// TestSweep: Sweep deletes lock rows expired by more than the guard,
// expired records, spent rate state and fence counters the floor has
// passed by the margin, and nothing else.
func TestSweep(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t)
	ctx := context.Background()
	// Lock rows: expired long ago, expired within the guard, live; their
	// counters hold a fence at the time floor, within the margin.
	cur := driver.FenceFloor(time.Now().UnixMicro())
	for i, off := range []time.Duration{-10 * time.Second, -2500 * time.Millisecond, -1500 * time.Millisecond, time.Minute} {
		if err := writeRawLock(ctx, db.pool, "sweep:"+string(rune('a'+i)), driver.NewLockID(), cur, off); err != nil {
			t.Fatal(err)
		}
	}
	// A counter the floor passed long ago (a key last locked with fence 7).
	if _, err := db.pool.Exec(ctx, `INSERT INTO syncguard_fence_counters (fence_key, fence) VALUES ('fence:old', 7)`); err != nil {
		t.Fatal(err)
	}
	// Records: expiring soon, no expiry.
	if _, err := d.PutRecord(ctx, "rec:short", 1, []byte("x"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PutRecord(ctx, "rec:forever", 1, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	// Rate: one spent quickly (1ms emission interval), one long.
	if _, err := d.AllowN(ctx, "rate:short", driver.RateLimit{Limit: 1000, Period: time.Second, Burst: 1}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AllowN(ctx, "rate:long", driver.RateLimit{Limit: 1, Period: time.Hour, Burst: 1}, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	n, err := d.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Deleted: 2 locks (−10s, −2.5s), rec:short, rate:short, fence:old.
	if n != 5 {
		t.Errorf("Sweep deleted %d rows; want 5", n)
	}
	if got := db.count(t, "syncguard_locks"); got != 2 {
		t.Errorf("%d lock rows left; want 2 (within the guard, live)", got)
	}
	if got := db.count(t, "syncguard_fence_counters"); got != 4 {
		t.Errorf("%d fence counters; want the 4 within the margin", got)
	}
	if got := db.count(t, "syncguard_records"); got != 1 {
		t.Errorf("%d records left; want 1", got)
	}
	if got := db.count(t, "syncguard_rate"); got != 1 {
		t.Errorf("%d rate rows left; want 1", got)
	}
	if n, err := d.Sweep(ctx); err != nil || n != 0 {
		t.Errorf("second Sweep = %d, %v; want 0", n, err)
	}
	// The fence of a swept key keeps increasing.
	r, err := d.Acquire(ctx, "sweep:a", time.Minute)
	if err != nil || !r.Acquired || r.Fence <= cur {
		t.Errorf("Acquire after Sweep = %+v, %v; want fence > %v", r, err, cur)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Sweep(cctx); driver.CodeOf(err) != driver.Aborted {
		t.Errorf("Sweep with a cancelled ctx: %v; want Aborted", err)
	}
}

// TestCleanupInIsLocked: the fire-and-forget cleanup deletes only locks
// expired by more than the guard, never the fence counter, and IsLocked's
// result is unaffected.
func TestCleanupInIsLocked(t *testing.T) {
	t.Parallel()
	db, d := newTestDriver(t, WithCleanupInIsLocked(true))
	ctx := context.Background()
	old, recent := driver.NewLockID(), driver.NewLockID()
	if err := writeRawLock(ctx, db.pool, "c:old", old, 3, -5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := writeRawLock(ctx, db.pool, "c:recent", recent, 3, -1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"c:old", "c:recent"} {
		if v, err := d.IsLocked(ctx, k); err != nil || v {
			t.Errorf("IsLocked(%s) = %v, %v; want false", k, v, err)
		}
	}
	d.bg.Wait() // the background deletes have finished
	exists := func(key string) bool {
		var ok bool
		if err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM syncguard_locks WHERE user_key = $1)`, key).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if exists("c:old") {
		t.Error("lock expired by 5s was not cleaned up")
	}
	if !exists("c:recent") {
		t.Error("lock expired by 1.5s (within the 2s guard) was deleted")
	}
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM syncguard_fence_counters`).Scan(&n); err != nil || n != 2 {
		t.Errorf("fence counters = %d, %v; want 2", n, err)
	}
}
