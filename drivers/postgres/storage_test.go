package postgres

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

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
