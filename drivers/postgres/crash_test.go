package postgres

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/internal/pgserver"
)

type crashLock struct {
	key    string
	lockID string
	fence  syncguard.Fence
	exp    int64
	epoch  int // crash epoch in which the acquire returned
}

// TestCrashSafety SIGKILLs the whole PostgreSQL process group while workers
// acquire and release, restarts it, and checks that no fence is ever
// repeated or lower than one returned before, and that every lock whose
// Acquire returned success (and whose release was never attempted) is
// still there after the restart (its TTL is far longer than the test).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	p := pgserver.Start(t)
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(p.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 12
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Setup(ctx, pool); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	d := newDriver(t, pool)

	const (
		workers = 8
		keys    = 96
		crashes = 3
		ttl     = 10 * time.Minute
	)
	var (
		mu       sync.Mutex
		epoch    int
		fences   = map[string][]crashLock{} // every successful acquire, in return order per key
		held     = map[string]crashLock{}   // lockID → acquired, release never attempted
		errCount int
	)
	run := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for {
					select {
					case <-stop:
						return
					default:
					}
					key := "crash:" + strconv.Itoa(rng.IntN(keys))
					r, err := d.Acquire(ctx, key, ttl)
					if err != nil {
						mu.Lock()
						errCount++
						mu.Unlock()
						if syncguard.CodeOf(err) == 0 {
							t.Errorf("unmapped error: %v", err)
						}
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if !r.Acquired {
						continue
					}
					mu.Lock()
					l := crashLock{key: key, lockID: r.LockID, fence: r.Fence, exp: r.ExpiresAtMs, epoch: epoch}
					fences[key] = append(fences[key], l)
					held[r.LockID] = l
					mu.Unlock()
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					if rng.IntN(8) == 0 {
						continue // keep it: it must survive the crash
					}
					mu.Lock()
					delete(held, r.LockID) // release attempted: outcome may be unknown
					mu.Unlock()
					_, _ = d.Release(ctx, r.LockID)
				}
			})
		}
		wg.Wait()
	}

	for c := 0; c <= crashes; c++ {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { run(stop); close(done) }()
		time.Sleep(700 * time.Millisecond)
		if c < crashes {
			p.Kill()
			time.Sleep(200 * time.Millisecond) // workers see the outage
			mu.Lock()
			epoch++
			mu.Unlock()
			p.Restart()
			time.Sleep(500 * time.Millisecond) // workers run against the restarted server
		}
		close(stop)
		<-done
	}
	if t.Failed() {
		return
	}

	// Fences: strictly increasing per key in the order the acquires
	// returned, never repeated, and every fence of a later epoch above
	// every fence of an earlier one.
	total := 0
	for key, ls := range fences {
		seen := map[syncguard.Fence]bool{}
		maxBefore := map[int]syncguard.Fence{}
		for i, l := range ls {
			total++
			// Holders of one key never overlap, so each acquire returned
			// after the previous holder's: return order is fence order.
			if i > 0 && l.fence <= ls[i-1].fence {
				t.Errorf("key %s: fence %v returned after %v", key, l.fence, ls[i-1].fence)
			}
			if seen[l.fence] {
				t.Errorf("key %s: fence %v returned twice", key, l.fence)
			}
			seen[l.fence] = true
			if l.fence > maxBefore[l.epoch] {
				maxBefore[l.epoch] = l.fence
			}
		}
		for _, l := range ls {
			for e, m := range maxBefore {
				if e < l.epoch && l.fence <= m {
					t.Errorf("key %s: fence %v after restart %d is not above %v returned before it", key, l.fence, l.epoch, m)
				}
			}
		}
	}
	// Held locks: still stored (their TTL has not run out).
	vanished := 0
	for id, l := range held {
		info, err := d.LookupByID(ctx, id)
		if err != nil {
			t.Fatalf("LookupByID: %v", err)
		}
		if info == nil || info.Fence != l.fence {
			vanished++
			t.Errorf("lock %s on %s (fence %v, acquired in epoch %d) vanished: %+v", id, l.key, l.fence, l.epoch, info)
		}
	}
	t.Logf("%d crashes; %d successful acquisitions, %d held locks checked, %d errors during outages",
		crashes, total, len(held), errCount)
	if total == 0 || len(held) == 0 {
		t.Error("no acquisitions recorded")
	}
}
