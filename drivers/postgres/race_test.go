package postgres

import (
	"context"
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
	runBoundaryRaces(t, boundaryRace{
		what: "Extend", prefix: "race", workers: 8, perWorker: 300, // 2400 races
		hold: func(ctx context.Context, key, old string, off time.Duration) error {
			return writeRawLock(ctx, db.pool, key, old, 1, off)
		},
		extend: func(ctx context.Context, _, old string) (driver.ExtendResult, error) {
			return ext.Extend(ctx, "", old, 10*time.Second)
		},
		acquire: func(ctx context.Context, key string) (driver.AcquireResult, error) {
			return acq.Acquire(ctx, key, 10*time.Second)
		},
		holders: func(ctx context.Context, key string) ([]string, error) {
			info, err := acq.LookupByKey(ctx, key)
			if info == nil {
				return nil, err
			}
			return []string{info.LockID}, err
		},
	})
}

// boundaryRace describes races of an extension of a holder at the end of
// its tolerance window against an acquisition of the same key, one fresh
// key "<prefix>:<worker>:<i>" a race.
type boundaryRace struct {
	what               string // the extension's name, for messages
	prefix             string
	workers, perWorker int
	// hold stores holder old of key, live for off + tolerance more.
	hold    func(ctx context.Context, key, old string, off time.Duration) error
	extend  func(ctx context.Context, key, old string) (driver.ExtendResult, error)
	acquire func(ctx context.Context, key string) (driver.AcquireResult, error)
	// holders returns the IDs of the live holders of key.
	holders func(ctx context.Context, key string) ([]string, error)
}

// runBoundaryRaces runs the races of r: each stores a holder live for
// 0–12ms more (tolerance included), so that the race straddles the
// boundary, and starts the acquisition 0–3ms after the extension. It
// fails the test if both win a race, if the stored holder is not the
// winner, or if either side never wins.
func runBoundaryRaces(t *testing.T, r boundaryRace) {
	t.Helper()
	var extendWon, acquireWon, neither atomic.Int64
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range r.workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := range r.perWorker {
				if t.Failed() {
					return
				}
				key := fmt.Sprintf("%s:%d:%d", r.prefix, w, i)
				old := driver.NewLockID()
				off := -driver.Tolerance + time.Duration(rng.IntN(13))*time.Millisecond
				if err := r.hold(ctx, key, old, off); err != nil {
					t.Errorf("hold: %v", err)
					return
				}
				var (
					er  driver.ExtendResult
					eer error
					wg2 sync.WaitGroup
				)
				wg2.Go(func() { er, eer = r.extend(ctx, key, old) })
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				ar, aer := r.acquire(ctx, key)
				wg2.Wait()
				if eer != nil || aer != nil {
					t.Errorf("race %s: %s err %v, acquisition err %v", key, r.what, eer, aer)
					return
				}
				var winner string
				switch {
				case er.OK && ar.Acquired:
					t.Errorf("race %s: both %s (%+v) and the acquisition (%+v) succeeded: two holders", key, r.what, er, ar)
					return
				case er.OK:
					extendWon.Add(1)
					winner = old
				case ar.Acquired:
					acquireWon.Add(1)
					winner = ar.LockID
				default:
					neither.Add(1)
					continue
				}
				held, err := r.holders(ctx, key)
				if err != nil {
					t.Errorf("holders: %v", err)
					return
				}
				if len(held) != 1 || held[0] != winner {
					t.Errorf("race %s: %s won but the stored holders are %v", key, winner, held)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d races: %s won %d, acquisition won %d, neither %d",
		r.workers*r.perWorker, r.what, extendWon.Load(), acquireWon.Load(), neither.Load())
	if !t.Failed() && (extendWon.Load() == 0 || acquireWon.Load() == 0) {
		t.Errorf("the race was not exercised on both sides (%s won %d, acquisition won %d)",
			r.what, extendWon.Load(), acquireWon.Load())
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
