package postgres

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// TestRecordsAndRateConcurrentFirstUse races writers on a never-used record
// name and a never-used rate key (the absent-row case): the highest fence
// wins and every refusal reports a newer stored fence; the rate limiter
// grants exactly its burst.
func TestRecordsAndRateConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t)
	ctx := t.Context()
	for round := range 5 {
		name := "rec:" + randHex(4)
		var wg sync.WaitGroup
		for f := 1; f <= 16; f++ {
			wg.Go(func() {
				r, err := d.PutRecord(ctx, name, driver.Fence(f), []byte{byte(f)}, 0)
				if err != nil {
					t.Errorf("PutRecord(%d): %v", f, err)
					return
				}
				if !r.Stored && r.Fence <= driver.Fence(f) {
					t.Errorf("round %d: PutRecord(%d) refused with stored fence %v; want a newer one", round, f, r.Fence)
				}
			})
		}
		wg.Wait()
		rec, err := d.GetRecord(ctx, name)
		if err != nil || rec == nil || rec.Fence != 16 || rec.Value[0] != 16 {
			t.Errorf("round %d: GetRecord = %+v, %v; want fence 16", round, rec, err)
		}

		key := "rate:" + randHex(4)
		lim := driver.RateLimit{Limit: 1, Period: time.Hour, Burst: 5}
		var allowed atomic.Int64
		for range 20 {
			wg.Go(func() {
				r, err := d.AllowN(ctx, key, lim, 1)
				if err != nil {
					t.Errorf("AllowN: %v", err)
					return
				}
				allowed.Add(int64(r.Allowed))
			})
		}
		wg.Wait()
		if n := allowed.Load(); n != 5 {
			t.Errorf("round %d: %d of 20 concurrent first requests allowed; want the burst, 5", round, n)
		}
	}
}
