package conformance

import (
	"time"

	"github.com/syncguard/syncguard"
)

// First come, first served hand-off (optional [syncguard.HandoffWatcher]):
// W06. W05 (turns.go) covers it through Guards.

// handoffWatcher returns the driver's HandoffWatcher or skips the case.
func (c *tc[C]) handoffWatcher() syncguard.HandoffWatcher {
	c.Helper()
	hw, ok := syncguard.AsHandoffWatcher(c.d)
	if !ok {
		c.Skip("driver does not implement syncguard.HandoffWatcher")
	}
	return hw
}

// queueWaiter subscribes a waiter to key, takes its initial signal and
// makes its first (contended) attempt, which queues it. The waiter stops
// when the case ends.
func (c *tc[C]) queueWaiter(hw syncguard.HandoffWatcher, key string) *syncguard.Handoff {
	c.Helper()
	h, err := hw.WatchHandoff(c.ctx, key)
	if err != nil {
		c.Fatalf("WatchHandoff: %v", err)
	}
	c.Cleanup(h.Stop)
	c.wantSignal(h.C, time.Second, "initial signal")
	if r, err := h.Acquire(c.ctx, 30*time.Second); err != nil || r.Acquired {
		c.Fatalf("queued attempt = %+v, %v; want contended", r, err)
	}
	time.Sleep(3 * time.Millisecond) // distinct join times: drivers order by time
	return h
}

// wantSignal fails the case unless ch signals within d.
func (c *tc[C]) wantSignal(ch <-chan struct{}, d time.Duration, what string) {
	c.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		c.Fatalf("%s: no signal within %v", what, d)
	}
}

// W06 runs alone: the Redis driver's warm waiters ride on a subscription
// per cluster slot, which another case's waiter could hold.
//
// W06: WarmHandoff returns nil for a key nobody waits for and for an
// invalid key. With a waiter of the held key subscribed, it returns a
// waiter without I/O whose C holds no signal and whose first attempt
// queues it; the releases then hand the key to the subscribed waiter first
// and to the warm one next.
func w06[C syncguard.FencedCapabilities](c *tc[C]) {
	hw := c.handoffWatcher()
	k := c.key("k")
	for _, key := range []string{k, ""} {
		if h := hw.WarmHandoff(key); h != nil {
			h.Stop()
			c.Fatalf("WarmHandoff(%q) without a waiter returned one", key)
		}
	}
	holder := c.mustAcquire(k, 30*time.Second)
	first := c.queueWaiter(hw, k) // subscribes
	h := hw.WarmHandoff(k)
	if h == nil {
		c.Fatal("WarmHandoff with a subscribed waiter returned nil")
	}
	c.Cleanup(h.Stop)
	select {
	case <-h.C:
		c.Fatal("warm waiter signalled before its first attempt")
	case <-time.After(20 * time.Millisecond):
	}
	if r, err := h.Acquire(c.ctx, 30*time.Second); err != nil || r.Acquired {
		c.Fatalf("first attempt = %+v, %v; want contended (queued)", r, err)
	}
	for _, w := range []*syncguard.Handoff{first, h} {
		c.wantRelease(holder.LockID, true)
		c.wantSignal(w.C, 2*time.Second, "next waiter")
		r, err := w.Acquire(c.ctx, 30*time.Second)
		if err != nil || !r.Acquired {
			c.Fatalf("Acquire after the grant = %+v, %v", r, err)
		}
		holder = r
	}
}
