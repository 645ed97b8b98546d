package conformance

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Release watching (docs/contract.md#release-watching, optional [driver.ReleaseWatcher]): W01–W03.
// Each case skips when syncguard.AsReleaseWatcher finds no watcher.

// wakeLatency bounds how long a release may take to reach a watcher.
const wakeLatency = time.Second

func (c *tc[C]) watcher() driver.ReleaseWatcher {
	c.Helper()
	w, ok := asWatcher(c.d)
	if !ok {
		c.Skip("driver does not implement driver.ReleaseWatcher")
	}
	return w
}

// W01: releasing a watched key signals the watcher within 1s.
func w01[C driver.Capabilities](c *tc[C]) {
	w := c.watcher()
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	ch, stop, err := w.WatchRelease(c.ctx, k)
	if err != nil {
		c.Fatalf("WatchRelease: %v", err)
	}
	defer stop()
	c.wantRelease(r.LockID, true)
	select {
	case <-ch:
	case <-time.After(wakeLatency):
		c.Errorf("no signal within %v of the release of a watched key", wakeLatency)
	case <-c.ctx.Done():
		c.Fatal("case deadline")
	}
	_, stop2, err := w.WatchRelease(c.ctx, "")
	if err == nil && stop2 != nil {
		stop2()
	}
	c.wantCode(`WatchRelease("")`, err, driver.InvalidArgument, "")
}

// W02: stop is idempotent, and stopped (or context-ended) subscriptions
// leave no goroutines behind. Runs alone, before the other cases, because
// it counts the process's goroutines.
func w02[C driver.Capabilities](c *tc[C]) {
	w := c.watcher()
	const n = 50
	baseline := runtime.NumGoroutine()
	var held []string
	for i := range n {
		k := c.key(fmt.Sprint(i))
		if i%2 == 0 {
			held = append(held, c.mustAcquire(k, 30*time.Second).LockID)
		}
		ctx, cancel := context.WithCancel(c.ctx)
		_, stop, err := w.WatchRelease(ctx, k)
		if err != nil {
			cancel()
			c.Fatalf("WatchRelease: %v", err)
		}
		if i%3 == 0 {
			cancel() // end by context first
			stop()
		} else {
			stop()
			cancel()
		}
		stop() // idempotent
	}
	for _, id := range held {
		c.wantRelease(id, true)
	}
	limit := baseline + 10
	deadline := time.Now().Add(3 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= limit {
			return
		}
		if time.Now().After(deadline) {
			c.Fatalf("%d goroutines 3s after %d stopped subscriptions; %d before (leak?)", g, n, baseline)
		}
		c.sleep(50 * time.Millisecond)
	}
}

// W03: a Guard waiting on a contended key with a long retry delay acquires
// within 1s of the release, woken by the watcher rather than its backoff.
func w03[C driver.Capabilities](c *tc[C]) {
	c.watcher()
	k := c.key("k")
	r := c.mustAcquire(k, 30*time.Second)
	g := c.guard()
	type result struct {
		l  *syncguard.Lease[C]
		at time.Time
		e  error
	}
	done := make(chan result, 1)
	go func() {
		l, err := g.Acquire(c.ctx, k, syncguard.RetryDelay(5*time.Second), syncguard.Backoff(syncguard.BackoffFixed),
			syncguard.Jitter(syncguard.JitterNone), syncguard.Timeout(15*time.Second))
		done <- result{l, time.Now(), err}
	}()
	c.sleep(300 * time.Millisecond) // let the waiter fail once and subscribe
	released := time.Now()
	c.wantRelease(r.LockID, true)
	res := await(c, c.ctx, done, "the waiting Acquire")
	if res.e != nil {
		c.Fatalf("waiting Acquire: %v", res.e)
	}
	defer res.l.Close()
	if d := res.at.Sub(released); d > wakeLatency {
		c.Errorf("the waiter acquired %v after the release; want within %v (woken, not after its 5s backoff)", d, wakeLatency)
	}
}
