package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// TestWatchSharedSubscription: many watchers of one key share one
// SSUBSCRIBE; all are woken by one release; the server-side subscription
// is gone once the last watcher stops.
func TestWatchSharedSubscription(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		r, err := d.Acquire(ctx, "shared", time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		const n = 20
		chans := make([]<-chan struct{}, n)
		stops := make([]func(), n)
		for i := range n {
			ch, stop, err := d.WatchRelease(ctx, "shared")
			if err != nil {
				t.Fatalf("WatchRelease: %v", err)
			}
			chans[i], stops[i] = ch, stop
		}
		d.hub.mu.Lock()
		subs := len(d.hub.subs)
		d.hub.mu.Unlock()
		if subs != 1 {
			t.Errorf("%d subscriptions for one key; want 1", subs)
		}
		kn, _ := d.names("shared")
		if got := shardNumsub(t, d, kn.rel()); got != 1 {
			t.Errorf("SHARDNUMSUB = %d; want 1", got)
		}
		if _, err := d.Release(ctx, "", r.LockID); err != nil {
			t.Fatal(err)
		}
		for i, ch := range chans {
			select {
			case <-ch:
			case <-time.After(2 * time.Second):
				t.Fatalf("watcher %d not woken by the release", i)
			}
		}
		for _, stop := range stops {
			stop()
			stop() // idempotent
		}
		deadline := time.Now().Add(3 * time.Second)
		for shardNumsub(t, d, kn.rel()) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("server-side subscription still there after the last watcher stopped")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func shardNumsub(t *testing.T, d *Driver, ch string) int64 {
	t.Helper()
	c := d.client
	v, err := c.Do(context.Background(), c.B().PubsubShardnumsub().Channel(ch).Build()).ToArray()
	if err != nil || len(v) != 2 {
		t.Fatalf("PUBSUB SHARDNUMSUB: %v", err)
	}
	n, _ := v[1].AsInt64()
	return n
}

// TestWatchChurn: watchers of one key come and go concurrently while
// releases happen; every watcher that is subscribed when a release happens
// is woken, and nothing leaks (goleak in TestMain).
func TestWatchChurn(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				ch, stop, err := d.WatchRelease(ctx, "churn")
				if err != nil {
					t.Errorf("watcher %d: %v", w, err)
					return
				}
				r, err := d.Acquire(ctx, "churn", time.Minute)
				if err != nil {
					t.Error(err)
					stop()
					return
				}
				if r.Acquired {
					if _, err := d.Release(ctx, "", r.LockID); err != nil {
						t.Error(err)
					}
				}
				select {
				case <-ch: // our own or another's release
				case <-time.After(time.Second):
				}
				stop()
			}
		}()
	}
	wg.Wait()
}

// TestWatchClose: Close wakes waiting watchers by closing their channels
// and refuses new watches.
func TestWatchClose(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	d, err := New(c, WithKeyPrefix(testPrefix("close")))
	if err != nil {
		t.Fatal(err)
	}
	ch, stop, err := d.WatchRelease(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	select {
	case _, ok := <-ch:
		if ok {
			// a value then close is fine too; drain to the close
			<-ch
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the watch")
	}
	stop()
	if _, _, err := d.WatchRelease(context.Background(), "k"); driver.CodeOf(err) != driver.ServiceUnavailable {
		t.Errorf("WatchRelease after Close: %v; want ServiceUnavailable", err)
	}
}

// TestWatchCancelledContext: a watch whose context ends before the
// subscription is confirmed returns Aborted and leaves nothing behind.
func TestWatchCancelledContext(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := d.WatchRelease(ctx, "k"); driver.CodeOf(err) != driver.Aborted {
		t.Errorf("WatchRelease(cancelled) = %v; want Aborted", err)
	}
	if _, _, err := d.WatchRelease(context.Background(), ""); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("WatchRelease(\"\") = %v; want InvalidArgument", err)
	}
}

// TestGuardWakesOnRelease: through Guard, a waiter blocked on a held key
// acquires it right after the holder releases, well before its backoff
// delay would have expired.
func TestGuardWakesOnRelease(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	g := syncguard.New(d)
	ctx := context.Background()
	l, err := g.Acquire(ctx, "wake")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		l2, err := g.Acquire(ctx, "wake", syncguard.RetryDelay(5*time.Second),
			syncguard.Backoff(syncguard.BackoffFixed), syncguard.Jitter(syncguard.JitterNone),
			syncguard.Timeout(20*time.Second), syncguard.MaxRetries(5))
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		_, _ = l2.Release(ctx)
	}()
	time.Sleep(300 * time.Millisecond) // the waiter has failed once and is subscribed
	released := time.Now()
	if _, err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	at := <-got
	if at.IsZero() {
		return
	}
	if lag := at.Sub(released); lag > time.Second {
		t.Errorf("waiter acquired %v after the release; want a wake-up, not the 5s backoff", lag)
	}
}

// TestWakeAfterSubscriptionEnded: a watch that signals its fresh waiter
// after the subscription already ended (the hub closed the waiter's
// channel) neither panics nor sends; the closed channel is the signal.
func TestWakeAfterSubscriptionEnded(t *testing.T) {
	var h watchHub
	w := &waiter{c: make(chan struct{}, 1)}
	h.wake(w)
	if len(w.c) != 1 {
		t.Fatal("an open waiter was not signalled")
	}
	<-w.c
	w.closed = true
	close(w.c)
	h.wake(w) // a send on the closed channel would panic
	if _, ok := <-w.c; ok {
		t.Fatal("a value was sent after the close")
	}
}
