package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/testkit"
)

// queue makes a waiter join key's queue: subscribe, consume the initial
// signal, make the contended attempt.
func queue(t *testing.T, d *Driver, key string) *driver.Handoff {
	t.Helper()
	h := testkit.Queue(t, d, key)
	time.Sleep(3 * time.Millisecond) // distinct server-time scores: FIFO by time
	return h
}

// TestHandoffFIFO: a release grants the key to the queue's head and wakes
// only it; the grant needs no further round trip, carries the next fence,
// and the key is locked meanwhile. Plain acquisitions cannot barge in.
func TestHandoffFIFO(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		holder := testkit.MustAcquire(t, d, "fifo")
		hs := []*driver.Handoff{queue(t, d, "fifo"), queue(t, d, "fifo"), queue(t, d, "fifo")}
		last := testkit.HandoffFIFO(t, d, "fifo", holder, hs)
		// Queue empty: the release wakes nobody in particular and the
		// key is free.
		if rr, err := d.Release(ctx, "", last.LockID); err != nil || !rr.OK {
			t.Fatalf("Release = %+v, %v", rr, err)
		}
		if r, err := d.Acquire(ctx, "fifo", time.Minute); err != nil || !r.Acquired {
			t.Fatalf("Acquire after the queue emptied = %+v, %v", r, err)
		}
	})
}

// TestHandoffClaimWithoutMessage: a waiter that missed its grant's message
// claims the lock with its next attempt.
func TestHandoffClaimWithoutMessage(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "claim")
	kn, _ := d.names("claim")
	id := newLockID(keySlot(kn.body)) // a waiter with no subscription at all
	if r, err := d.acquire(ctx, "claim", time.Minute, id); err != nil || r.Acquired {
		t.Fatalf("queued attempt = %+v, %v", r, err)
	}
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	grant, err := d.LookupByKey(ctx, "claim")
	if err != nil || grant == nil || grant.Fence <= holder.Fence {
		t.Fatalf("lock after the release = %+v, %v; want the grant, fence > %v", grant, err, holder.Fence)
	}
	r, err := d.acquire(ctx, "claim", time.Minute, id)
	if err != nil || !r.Acquired || r.LockID != id || r.Fence != grant.Fence {
		t.Fatalf("claim = %+v, %v; want the grant to %s with fence %v", r, err, id, grant.Fence)
	}
	if rr, err := d.Release(ctx, "", id); err != nil || !rr.OK {
		t.Fatalf("Release(grant) = %+v, %v", rr, err)
	}
}

// TestHandoffSkipsDeadWaiter: a queued waiter that stops attempting (it
// crashed) is skipped once its liveness marker lapses; a waiter that keeps
// attempting behind it gets the key.
func TestHandoffSkipsDeadWaiter(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	d := newDriver(t, c)
	d.waiterLiveMs = "150"
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "dead")
	kn, _ := d.names("dead")
	dead := newLockID(keySlot(kn.body)) // queues, then never attempts again
	live := newLockID(keySlot(kn.body))
	for _, id := range []string{dead, live} {
		if r, err := d.acquire(ctx, "dead", time.Minute, id); err != nil || r.Acquired {
			t.Fatalf("queued attempt = %+v, %v", r, err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	time.Sleep(250 * time.Millisecond) // both markers lapse; only live renews
	if r, err := d.acquire(ctx, "dead", time.Minute, live); err != nil || r.Acquired {
		t.Fatalf("renewing attempt = %+v, %v", r, err)
	}
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	info, err := d.LookupByKey(ctx, "dead")
	if err != nil || info == nil || info.LockID != live {
		t.Fatalf("holder after the release = %+v, %v; want the live waiter %s (the dead one is %s)", info, err, live, dead)
	}
	n, err := c.Do(ctx, c.B().Zcard().Key(kn.queue()).Build()).AsInt64()
	if err != nil || n != 0 {
		t.Fatalf("queue length = %d, %v; want 0 (the dead entry dropped)", n, err)
	}
}

// TestInboxLength: the scripts' inbox length matches the minted inboxes.
func TestInboxLength(t *testing.T) {
	if got := len(newInbox()); got != inboxLen || inboxLenStr != strconv.Itoa(inboxLen) {
		t.Fatalf("inbox length %d, inboxLen %d, inboxLenStr %q", got, inboxLen, inboxLenStr)
	}
}

// TestLateAttemptAfterLeave: an attempt of a waiter that reaches the
// server after the waiter's Stop (its caller gave up while the request was
// in flight) neither queues the waiter again nor acquires the key, and
// Release, Extend and LookupRawByID see no lock under its ID.
func TestLateAttemptAfterLeave(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	ctx := context.Background()
	kn, _ := d.names("late")
	queueLen := func() int64 {
		t.Helper()
		n, err := d.client.Do(ctx, d.client.B().Zcard().Key(kn.queue()).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	holder := testkit.MustAcquire(t, d, "late")
	id := newLockID(keySlot(kn.body)) // WatchHandoff, with the ID known
	s, w, _, err := d.subscribe(ctx, d.inboxChannel(kn), id, "late")
	if err != nil {
		t.Fatal(err)
	}
	h := d.newWaiter("late", kn, id, s, w)
	if r, err := h.Acquire(ctx, time.Minute); err != nil || r.Acquired {
		t.Fatalf("queued attempt = %+v, %v; want contended", r, err)
	}
	h.Stop()
	if n := queueLen(); n != 0 {
		t.Fatalf("queue length after Stop = %d; want 0", n)
	}
	// The late attempt while the key is held: no queue entry.
	if r, err := d.acquire(ctx, "late", time.Minute, id); err != nil || r.Acquired {
		t.Fatalf("late attempt (held) = %+v, %v; want contended", r, err)
	}
	if n := queueLen(); n != 0 {
		t.Fatalf("queue length after the late attempt = %d; want 0", n)
	}
	// The late attempt on a free key: not acquired.
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	if r, err := d.acquire(ctx, "late", time.Minute, id); err != nil || r.Acquired {
		t.Fatalf("late attempt (free) = %+v, %v; want not acquired", r, err)
	}
	if locked, err := d.IsLocked(ctx, "late"); err != nil || locked {
		t.Fatalf("IsLocked = %v, %v; want a free key", locked, err)
	}
	if rr, err := d.Release(ctx, "", id); err != nil || rr.OK || rr.Detail != driver.DetailNotFound {
		t.Fatalf("Release(retired ID) = %+v, %v; want not-found", rr, err)
	}
	if er, err := d.Extend(ctx, "", id, time.Minute); err != nil || er.OK {
		t.Fatalf("Extend(retired ID) = %+v, %v; want not extended", er, err)
	}
	if info, err := d.LookupByID(ctx, id); err != nil || info != nil {
		t.Fatalf("LookupRawByID(retired ID) = %+v, %v; want nil", info, err)
	}
	// The retirement outlives those calls.
	if r, err := d.acquire(ctx, "late", time.Minute, id); err != nil || r.Acquired {
		t.Fatalf("late attempt after Release/Extend = %+v, %v; want not acquired", r, err)
	}
}

// TestLateAcquireAfterUnknownOutcome: a plain acquisition that reaches the
// server after the driver released its lock ID for an unknown outcome
// does not take the key; one that got there first is released.
func TestLateAcquireAfterUnknownOutcome(t *testing.T) {
	t.Parallel()
	d := newDriver(t, singleClient(t))
	ctx := context.Background()
	kn, _ := d.names("unknown")
	for _, first := range []string{"release", "acquire"} {
		t.Run(first+" first", func(t *testing.T) {
			an := d.acquireNames(kn.body, "")
			release := func() {
				d.bg.Add(1)
				d.releaseUnknown(an)
			}
			acquire := func() []int64 {
				t.Helper()
				vals, err := d.exec(ctx, d.s.acquire, []string{an.lock, an.index},
					[]string{an.lockID, "60000", "unknown", "60999"}).AsIntSlice()
				if err != nil {
					t.Fatal(err)
				}
				return vals
			}
			if first == "release" {
				release()
				if got := acquire(); got[0] != 0 {
					t.Fatalf("late acquire = %v; want not acquired", got)
				}
			} else {
				if got := acquire(); got[0] != 1 {
					t.Fatalf("acquire = %v; want acquired", got)
				}
				release()
			}
			if locked, err := d.IsLocked(ctx, "unknown"); err != nil || locked {
				t.Fatalf("IsLocked = %v, %v; want a free key", locked, err)
			}
		})
	}
}

// TestUnheardWaiterRenew: a waiter of a driver whose SSUBSCRIBE is refused
// (an ACL user without it, from the conformance harness) polls for its
// grant, so its Renew is unheardRenew. Conformance case W10 covers how it
// queues and claims.
func TestUnheardWaiterRenew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, singleClient(t), "unheard")
	h.opt = rueidis.ClientOption{InitAddress: []string{singleAddr()}, DisableCache: true}
	t.Cleanup(h.Close)
	d, err := h.OpenUnheardDriver(ctx)
	if err != nil {
		t.Fatalf("OpenUnheardDriver: %v", err)
	}
	hw, _ := any(d).(driver.HandoffWatcher)
	w, err := hw.WatchHandoff(ctx, "k")
	if err != nil {
		t.Fatalf("WatchHandoff with SSUBSCRIBE refused = %v; want a waiter", err)
	}
	defer w.Stop()
	if w.Renew != unheardRenew {
		t.Errorf("Renew of a waiter without notifications = %v; want %v", w.Renew, unheardRenew)
	}
}
