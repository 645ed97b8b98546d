package conformance

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Guards of several processes taking turns on one key (docs/contract.md#hand-off and #contexts-and-unknown-outcomes):
// W04 (waits that give up), W05 (first come, first served hand-off) and
// W09 (a process that cannot subscribe keeps its turn).
// Each worker has a driver of its own when the harness implements
// [DriverOpener], as separate processes would; otherwise the workers share
// [Harness.Driver].

// turnWorkers is how many Guards take turns in W04 and W05.
const turnWorkers = 6

// turnTTL is the TTL of the locks of W04 and W05: a lock left behind by a
// waiter that gave up would block the key this long, far beyond the
// cases' bounds.
const turnTTL = 30 * time.Second

// workerDrivers returns one driver per worker.
func (c *tc[C]) workerDrivers(n int) []driver.Driver[C] {
	c.Helper()
	ds := make([]driver.Driver[C], n)
	o, ok := c.h.(DriverOpener[C])
	for i := range ds {
		ds[i] = c.d
		if ok {
			d, err := o.OpenDriver(c.ctx)
			if err != nil {
				c.Fatalf("OpenDriver: %v", err)
			}
			ds[i] = d
		}
	}
	return ds
}

// exclusion checks the critical sections of a case: never two at once,
// fences rising in the order the sections start.
type exclusion struct {
	mu   sync.Mutex
	inCS bool
	last syncguard.Fence
}

// hold is one critical section of d with fence f; a violation is reported
// through errorf.
func (e *exclusion) hold(errorf func(string, ...any), f syncguard.Fence, d time.Duration) {
	e.mu.Lock()
	if e.inCS {
		errorf("two holders at once")
	}
	e.inCS = true
	if f <= e.last {
		errorf("fence %v after %v", f, e.last)
	} else {
		e.last = f
	}
	e.mu.Unlock()
	time.Sleep(d)
	e.mu.Lock()
	e.inCS = false
	e.mu.Unlock()
}

// W04: Guards take one key while many of their waits give up (timeouts of
// 3 ms, contexts cancelled after 2 ms), so waiters leave before and after
// the key is handed to them, and acquisitions are cancelled with their
// requests in flight. Mutual exclusion holds, fences rise, every release
// succeeds, and soon after the last worker is done the key is free: no
// lock is left to a waiter that gave up, nor to an acquisition whose
// caller never saw its result.
func w04[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	rounds := 25
	if c.tm.Short > time.Second { // slow backends (Firestore's emulator)
		rounds = 10
	}
	var (
		ex      exclusion
		wins    atomic.Int32
		giveUps atomic.Int32
		wg      sync.WaitGroup
	)
	for w, d := range c.workerDrivers(turnWorkers) {
		g := syncguard.New(d)
		wg.Go(func() {
			for r := range rounds {
				ctx, cancel := context.WithCancel(c.ctx)
				timeout := 5 * time.Second
				switch (w + r) % 4 {
				case 0:
					timeout = 3 * time.Millisecond
				case 1:
					time.AfterFunc(2*time.Millisecond, cancel)
				}
				l, err := g.Acquire(ctx, k, syncguard.TTL(turnTTL), syncguard.Timeout(timeout),
					syncguard.MaxRetries(1000), syncguard.AutoExtend(false))
				if err != nil {
					cancel()
					if c.ctx.Err() != nil {
						return
					}
					giveUps.Add(1)
					continue
				}
				ex.hold(c.Errorf, c.leaseFence(l), time.Millisecond)
				if _, err := l.Release(context.WithoutCancel(c.ctx)); err != nil {
					c.Errorf("worker %d: Release: %v", w, err)
				}
				cancel()
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	c.Logf("%d critical sections, %d waits given up", wins.Load(), giveUps.Load())
	if wins.Load() == 0 || giveUps.Load() == 0 {
		c.Fatalf("wins %d, give-ups %d: the case did not exercise both paths", wins.Load(), giveUps.Load())
	}
	// Drivers may leave queues and release unknown outcomes in the
	// background; allow them a few seconds, far below the TTL.
	deadline := time.Now().Add(5 * time.Second)
	for {
		locked, err := c.d.IsLocked(c.ctx, k)
		if err != nil {
			c.Fatalf("IsLocked: %v", err)
		}
		if !locked {
			return
		}
		if time.Now().After(deadline) {
			c.Fatalf("the key is still locked 5s after the last worker finished; want it free (a lock left behind blocks it for its TTL, %v)", turnTTL)
		}
		c.sleep(50 * time.Millisecond)
	}
}

// takeTurns runs a Guard on each of ds that re-acquires key k at once
// after each release, holding it 2 ms, for 3 s, with the acquire options
// of the turn cases plus extra. Mutual exclusion and rising fences are
// checked as it runs. It returns each worker's critical sections and the
// longest wait of an Acquire.
func (c *tc[C]) takeTurns(ds []driver.Driver[C], k string, extra ...syncguard.AcquireOption) ([]int32, time.Duration) {
	c.Helper()
	opts := append([]syncguard.AcquireOption{syncguard.TTL(turnTTL), syncguard.Timeout(turnTTL),
		syncguard.MaxRetries(1000), syncguard.AutoExtend(false)}, extra...)
	var (
		ex      exclusion
		wins    = make([]atomic.Int32, len(ds))
		stop    atomic.Bool
		maxWait atomic.Int64
		wg      sync.WaitGroup
	)
	for w, d := range ds {
		g := syncguard.New(d)
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				l, err := g.Acquire(c.ctx, k, opts...)
				if err != nil {
					c.Errorf("worker %d: Acquire: %v", w, err)
					return
				}
				if wt := int64(time.Since(start)); wt > maxWait.Load() {
					maxWait.Store(wt)
				}
				ex.hold(c.Errorf, c.leaseFence(l), 2*time.Millisecond)
				if _, err := l.Release(context.WithoutCancel(c.ctx)); err != nil {
					c.Errorf("worker %d: Release: %v", w, err)
				}
				wins[w].Add(1)
			}
		})
	}
	c.sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	got := make([]int32, len(ds))
	for i := range wins {
		got[i] = wins[i].Load()
	}
	return got, time.Duration(maxWait.Load())
}

// W05: with a [driver.HandoffWatcher], Guards that re-acquire one key
// at once after each release share it out first come, first served: over
// 3 s the fewest critical sections of a worker are at least half the most
// (a wake-everyone scheme lets the releaser, who needs no wake-up, win
// again and again). Mutual exclusion holds, fences rise, and no wait comes
// near the 30 s TTL (a grant left to nobody) or relies on the 2 s backoff
// alone (bound 3 s: a waiter that misses a wake-up still attempts every
// Renew period).
func w05[C driver.Capabilities](c *tc[C]) {
	c.handoffWatcher()
	got, maxWait := c.takeTurns(c.workerDrivers(turnWorkers), c.key("k"), syncguard.RetryDelay(2*time.Second))
	lo, hi := slices.Min(got), slices.Max(got)
	c.Logf("critical sections per worker %v, longest wait %v", got, maxWait)
	if hi == 0 || lo*2 < hi {
		c.Errorf("critical sections per worker %v: the fewest are below half the most; want first come, first served", got)
	}
	if maxWait > 3*time.Second {
		c.Errorf("longest wait %v; want hand-offs, not stalls", maxWait)
	}
}

// W09: with a [driver.HandoffWatcher] and an [UnheardDriverOpener],
// Guards of four processes take turns on one key for 3 s, holding it
// 2 ms, and one of them cannot subscribe to wake-ups. That one is not
// starved by the others' hand-offs (which a poller would find granting the
// key to the queue on every release): its critical sections are at least
// half the most of any worker. Mutual exclusion holds and fences rise.
func w09[C driver.Capabilities](c *tc[C]) {
	c.handoffWatcher()
	o := harnessAs[UnheardDriverOpener[C]](c, "UnheardDriverOpener")
	unheard, err := o.OpenUnheardDriver(c.ctx)
	if err != nil {
		c.Fatalf("OpenUnheardDriver: %v", err)
	}
	got, _ := c.takeTurns(append([]driver.Driver[C]{unheard}, c.workerDrivers(3)...), c.key("k"))
	c.Logf("critical sections per worker (the first cannot subscribe) %v", got)
	if got[0]*2 < slices.Max(got) {
		c.Errorf("critical sections per worker %v: the one that cannot subscribe is below half the most; want it to keep its turn", got)
	}
}
