package conformance

import (
	"time"

	"github.com/syncguard/syncguard/driver"
)

// First come, first served hand-off (optional [driver.HandoffWatcher]):
// W06–W08 and W10. W05 and W09 (turns.go) cover it through Guards.

// handoffWatcher returns the driver's HandoffWatcher or skips the case.
func (c *tc[C]) handoffWatcher() driver.HandoffWatcher {
	c.Helper()
	hw, ok := asHandoff(c.d)
	if !ok {
		c.Skip("driver does not implement driver.HandoffWatcher")
	}
	return hw
}

// queueWaiter subscribes a waiter to key, takes its initial signal and
// makes its first (contended) attempt, which queues it. The waiter stops
// when the case ends.
func (c *tc[C]) queueWaiter(hw driver.HandoffWatcher, key string) *driver.Handoff {
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
func w06[C driver.Capabilities](c *tc[C]) {
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
	for _, w := range []*driver.Handoff{first, h} {
		c.wantRelease(holder.LockID, true)
		c.wantSignal(w.C, 2*time.Second, "next waiter")
		r, err := w.Acquire(c.ctx, 30*time.Second)
		if err != nil || !r.Acquired {
			c.Fatalf("Acquire after the grant = %+v, %v", r, err)
		}
		holder = r
	}
}

// W07: a release grants the key to the head of the queue. Until the head
// claims it the key stays locked: a plain Acquire and the attempts of the
// waiters behind the head are contended. The head's next attempt returns
// the lock under the head's ID with a higher fence, and LookupByID finds
// it. Once the queue is empty a release frees the key.
func w07[C driver.Capabilities](c *tc[C]) {
	hw := c.handoffWatcher()
	k := c.key("k")
	holder := c.mustAcquire(k, 30*time.Second)
	hs := []*driver.Handoff{c.queueWaiter(hw, k), c.queueWaiter(hw, k), c.queueWaiter(hw, k)}
	prev, fence := holder.LockID, holder.Fence
	for i, h := range hs {
		c.wantRelease(prev, true)
		c.wantSignal(h.C, 5*time.Second, "head of the queue")
		c.wantLocked(k, true)
		c.wantContended(k, 30*time.Second)
		for j, o := range hs[i+1:] {
			if r, err := o.Acquire(c.ctx, 30*time.Second); err != nil || r.Acquired {
				c.Fatalf("round %d: attempt of waiter %d behind the head = %+v, %v; want contended", i, i+1+j, r, err)
			}
		}
		r, err := h.Acquire(c.ctx, 30*time.Second)
		if err != nil || !r.Acquired {
			c.Fatalf("round %d: the head's attempt = %+v, %v; want the grant", i, r, err)
		}
		if r.Fence <= fence {
			c.Fatalf("round %d: fence %v not above %v", i, r.Fence, fence)
		}
		if info := c.lookupID(r.LockID); info == nil || info.Fence != r.Fence {
			c.Fatalf("round %d: LookupByID(grant) = %+v; want fence %v", i, info, r.Fence)
		}
		prev, fence = r.LockID, r.Fence
	}
	c.wantRelease(prev, true)
	r := c.mustAcquire(k, 30*time.Second)
	if r.Fence <= fence {
		c.Fatalf("fence after the queue emptied %v not above %v", r.Fence, fence)
	}
	c.wantRelease(r.LockID, true)
}

// W08: a waiter that stops waiting leaves the queue, and a lock granted
// to it that it has not claimed is released and handed on: of three
// queued waiters, the first stops before the release (Stop is idempotent)
// and the second stops after being granted the key, which then reaches
// the third. Stop may act in the background; the case only waits for its
// effects.
func w08[C driver.Capabilities](c *tc[C]) {
	hw := c.handoffWatcher()
	k := c.key("k")
	holder := c.mustAcquire(k, 30*time.Second)
	gone := c.queueWaiter(hw, k)    // leaves before any release
	granted := c.queueWaiter(hw, k) // is granted the key, then leaves unclaimed
	next := c.queueWaiter(hw, k)
	gone.Stop()
	gone.Stop()
	c.wantRelease(holder.LockID, true)
	c.wantSignal(granted.C, 5*time.Second, "second waiter (the first left)")
	granted.Stop()
	c.wantSignal(next.C, 5*time.Second, "third waiter (handed on by the leave)")
	r, err := next.Acquire(c.ctx, 30*time.Second)
	if err != nil || !r.Acquired {
		c.Fatalf("the third waiter's attempt = %+v, %v; want the grant", r, err)
	}
	c.wantRelease(r.LockID, true)
	r = c.mustAcquire(k, 30*time.Second)
	c.wantRelease(r.LockID, true)
}

// W10: with an [UnheardDriverOpener], a waiter of a driver that cannot
// subscribe to wake-ups still queues. WarmHandoff gives nothing there, and
// WatchHandoff rejects an invalid key; for a held key it returns a waiter
// whose channel is already closed. Its first attempt is contended and
// queues it, ahead of a subscribed waiter that joins after it: the
// release grants the key to it (the subscribed waiter's attempt stays
// contended), its next attempt claims the lock with the next fence, and
// its release hands the key on to the subscribed waiter, which is
// signalled. Stop is idempotent.
func w10[C driver.Capabilities](c *tc[C]) {
	hw := c.handoffWatcher()
	o := harnessAs[UnheardDriverOpener[C]](c, "UnheardDriverOpener")
	ud, err := o.OpenUnheardDriver(c.ctx)
	if err != nil {
		c.Fatalf("OpenUnheardDriver: %v", err)
	}
	uhw, ok := asHandoff(ud)
	if !ok {
		c.Fatal("the unheard driver does not implement driver.HandoffWatcher")
	}
	k := c.key("k")
	if h := uhw.WarmHandoff(k); h != nil {
		h.Stop()
		c.Fatal("WarmHandoff of a driver without wake-ups returned a waiter")
	}
	_, err = uhw.WatchHandoff(c.ctx, "")
	c.wantCode("WatchHandoff(\"\") without wake-ups", err, driver.InvalidArgument, "")
	holder := c.mustAcquire(k, 30*time.Second)
	first, err := uhw.WatchHandoff(c.ctx, k)
	if err != nil || first == nil {
		c.Fatalf("WatchHandoff without wake-ups = %v, %v; want a waiter", first, err)
	}
	c.Cleanup(first.Stop)
	select {
	case _, ok := <-first.C:
		if ok {
			c.Fatal("the channel of a waiter without wake-ups delivered a value; want it closed")
		}
	default:
		c.Fatal("the channel of a waiter without wake-ups is open; want it closed")
	}
	if r, err := first.Acquire(c.ctx, 30*time.Second); err != nil || r.Acquired {
		c.Fatalf("its first attempt = %+v, %v; want contended (queued)", r, err)
	}
	time.Sleep(3 * time.Millisecond) // distinct join times
	second := c.queueWaiter(hw, k)
	c.wantRelease(holder.LockID, true)
	grant := c.lookupKey(k)
	if grant == nil || grant.Fence <= holder.Fence {
		c.Fatalf("lock after the release = %+v; want the grant to the first waiter, fence > %v", grant, holder.Fence)
	}
	if r, err := second.Acquire(c.ctx, 30*time.Second); err != nil || r.Acquired {
		c.Fatalf("the subscribed waiter's attempt = %+v, %v; want contended (the first waiter's turn)", r, err)
	}
	r, err := first.Acquire(c.ctx, 30*time.Second)
	if err != nil || !r.Acquired || r.Fence != grant.Fence {
		c.Fatalf("the first waiter's next attempt = %+v, %v; want the grant with fence %v", r, err, grant.Fence)
	}
	if rr, err := ud.Release(c.ctx, "", r.LockID); err != nil || !rr.OK {
		c.Fatalf("Release of the first waiter's lock = %+v, %v", rr, err)
	}
	c.wantSignal(second.C, 5*time.Second, "the subscribed waiter, next in turn")
	if r, err := second.Acquire(c.ctx, 30*time.Second); err != nil || !r.Acquired {
		c.Fatalf("the subscribed waiter's attempt = %+v, %v; want the grant", r, err)
	}
	first.Stop()
	first.Stop() // idempotent
}
