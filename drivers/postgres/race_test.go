package postgres

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard/driver"
)

// TestBoundaryRace is conformance case 160: extend of an almost-expired lock
// racing a contender's acquire, with a server-side delay injected into the
// extend statement before it locks the row (the extend "began earlier").
// Never may both succeed: that would be two holders.
func TestBoundaryRace(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, func(c *pgxpool.Config) { c.MaxConns = 20 })
	const delay = 4 * time.Millisecond
	ext := newDriver(t, db.pool, func(o *options) { o.extendDelay = delay })
	acq := newDriver(t, db.pool)
	const workers, perWorker = 8, 300 // 2400 races
	var extendWon, acquireWon, neither atomic.Int64
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := range perWorker {
				if t.Failed() {
					return
				}
				key := fmt.Sprintf("race:%d:%d", w, i)
				old := driver.NewLockID()
				// Live for 0–12ms more (tolerance included), so the race
				// straddles the boundary.
				off := -driver.Tolerance + time.Duration(rng.IntN(13))*time.Millisecond
				if err := writeRawLock(ctx, db.pool, key, old, 1, off); err != nil {
					t.Errorf("writeRawLock: %v", err)
					return
				}
				var (
					er  driver.ExtendResult
					eer error
					wg2 sync.WaitGroup
				)
				wg2.Go(func() { er, eer = ext.Extend(ctx, "", old, 10*time.Second) })
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				ar, aer := acq.Acquire(ctx, key, 10*time.Second)
				wg2.Wait()
				if eer != nil || aer != nil {
					t.Errorf("race %s: Extend err %v, Acquire err %v", key, eer, aer)
					return
				}
				switch {
				case er.OK && ar.Acquired:
					t.Errorf("race %s: both Extend (%+v) and Acquire (%+v) succeeded: two holders", key, er, ar)
					return
				case er.OK:
					extendWon.Add(1)
				case ar.Acquired:
					acquireWon.Add(1)
				default:
					neither.Add(1)
				}
				// The stored lock is the winner's.
				info, err := acq.LookupByKey(ctx, key)
				if err != nil {
					t.Errorf("lookup: %v", err)
					return
				}
				switch {
				case er.OK && (info == nil || info.LockID != old):
					t.Errorf("race %s: extend won but the stored lock is %+v", key, info)
				case ar.Acquired && (info == nil || info.LockID != ar.LockID):
					t.Errorf("race %s: acquire won but the stored lock is %+v", key, info)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d races: extend won %d, acquire won %d, neither %d",
		workers*perWorker, extendWon.Load(), acquireWon.Load(), neither.Load())
	if !t.Failed() && (extendWon.Load() == 0 || acquireWon.Load() == 0) {
		t.Errorf("the race was not exercised on both sides (extend won %d, acquire won %d)",
			extendWon.Load(), acquireWon.Load())
	}
}

// TestExclusionUnderLoad runs 32 goroutines over one shared pool on 4 keys
// for 10s with an overlap detector in the critical section, and checks
// fences strictly increase per key in the order of entry.
func TestExclusionUnderLoad(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, func(c *pgxpool.Config) { c.MaxConns = 16 })
	d := newDriver(t, db.pool)
	const goroutines, keys = 32, 4
	const duration = 10 * time.Second
	var (
		inside   [keys]atomic.Int32
		overlaps atomic.Int64
		entries  atomic.Int64
		mu       [keys]sync.Mutex
		last     [keys]driver.Fence
	)
	ctx := t.Context()
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			ki := g % keys
			key := fmt.Sprintf("load:%d", ki)
			for time.Now().Before(deadline) && !t.Failed() {
				r, err := d.Acquire(ctx, key, 5*time.Second)
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				if !r.Acquired {
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					continue
				}
				if inside[ki].Add(1) != 1 {
					overlaps.Add(1)
				}
				mu[ki].Lock()
				if r.Fence <= last[ki] {
					t.Errorf("key %d: fence %v entered after %v", ki, r.Fence, last[ki])
				}
				last[ki] = r.Fence
				mu[ki].Unlock()
				entries.Add(1)
				time.Sleep(200 * time.Microsecond)
				inside[ki].Add(-1)
				rr, err := d.Release(ctx, "", r.LockID)
				if err != nil || !rr.OK {
					t.Errorf("Release = %+v, %v", rr, err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d exclusive entries by %d goroutines on %d keys in %v", entries.Load(), goroutines, keys, duration)
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping entries; want 0", n)
	}
	if entries.Load() < keys {
		t.Errorf("only %d entries", entries.Load())
	}
}
