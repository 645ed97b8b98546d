package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

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
