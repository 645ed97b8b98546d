package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/testkit"
)

// queuedAttempt is one attempt of a waiter with ID id and no
// subscription at all.
func queuedAttempt(t *testing.T, d *Driver, key, id string) driver.AcquireResult {
	t.Helper()
	base, _ := baseKey(key)
	fk, _ := fenceKey(base)
	r, err := d.acquireQueued(context.Background(), key, base, fk, id, time.Minute)
	if err != nil {
		t.Fatalf("queued attempt of %s: %v", id, err)
	}
	return r
}

// waiterCount is the number of queued waiters of key (tombstones of
// waiters that left excluded).
func waiterCount(t *testing.T, d *Driver, key string) int64 {
	t.Helper()
	base, _ := baseKey(key)
	var n int64
	if err := d.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM `+quote(waitersTable(d.opts.tables.Locks))+` WHERE key = $1 AND seq >= 0`, base).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHandoffFIFO: a release grants the key to the queue's head and wakes
// only it; the grant needs no further round trip, carries the next fence,
// and the key is locked meanwhile (plain acquisitions cannot barge in).
// Once the queue is empty a release frees the key.
func TestHandoffFIFO(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t)
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "fifo")
	hs := []*driver.Handoff{testkit.Queue(t, d, "fifo"), testkit.Queue(t, d, "fifo"), testkit.Queue(t, d, "fifo")}
	if n := waiterCount(t, d, "fifo"); n != 3 {
		t.Fatalf("%d queued waiters; want 3", n)
	}
	last := testkit.HandoffFIFO(t, d, "fifo", holder, hs)
	if n := waiterCount(t, d, "fifo"); n != 0 {
		t.Fatalf("%d queued waiters after every grant; want 0", n)
	}
	if rr, err := d.Release(ctx, "", last.LockID); err != nil || !rr.OK {
		t.Fatalf("Release = %+v, %v", rr, err)
	}
	if r, err := d.Acquire(ctx, "fifo", time.Minute); err != nil || !r.Acquired || r.Fence <= last.Fence {
		t.Fatalf("Acquire after the queue emptied = %+v, %v; want fence > %v", r, err, last.Fence)
	}
}

// TestHandoffLeave: a waiter that stops waiting leaves the queue, and a
// lock granted to it before it claimed it is released and handed on.
func TestHandoffLeave(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t)
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "leave")
	gone := testkit.Queue(t, d, "leave")    // leaves before any release
	granted := testkit.Queue(t, d, "leave") // is granted the key, then leaves unclaimed
	next := testkit.Queue(t, d, "leave")
	gone.Stop()
	gone.Stop() // idempotent
	testkit.WaitFor(t, 2*time.Second, 10*time.Millisecond, "the first waiter's leave", func() bool { return waiterCount(t, d, "leave") == 2 })
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitSignal(t, granted.C, 2*time.Second, "second waiter (the first left)")
	granted.Stop()
	testkit.WaitSignal(t, next.C, 2*time.Second, "third waiter (handed on by the leave)")
	r, err := next.Acquire(ctx, time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	if _, err := d.Release(ctx, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Acquire(ctx, "leave", time.Minute); err != nil || !r.Acquired {
		t.Fatalf("Acquire after everyone left = %+v, %v", r, err)
	}
}

// TestHandoffClaimWithoutMessage: a waiter that missed its grant's
// notification claims the lock with its next attempt.
func TestHandoffClaimWithoutMessage(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t)
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "claim")
	id := driver.NewLockID() // a waiter with no subscription at all
	if r := queuedAttempt(t, d, "claim", id); r.Acquired {
		t.Fatalf("queued attempt = %+v; want contended", r)
	}
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	grant, err := d.LookupByKey(ctx, "claim")
	if err != nil || grant == nil || grant.Fence <= holder.Fence {
		t.Fatalf("lock after the release = %+v, %v; want the grant, fence > %v", grant, err, holder.Fence)
	}
	r := queuedAttempt(t, d, "claim", id)
	want := driver.AcquireResult{Acquired: true, LockID: id, Fence: grant.Fence, ExpiresAtMs: r.ExpiresAtMs}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Fatalf("claim (-want +got):\n%s", diff)
	}
	if rr, err := d.Release(ctx, "", id); err != nil || !rr.OK {
		t.Fatalf("Release(grant) = %+v, %v", rr, err)
	}
}

// TestHandoffSkipsDeadWaiter: a queued waiter that stops attempting (it
// crashed) is skipped once its place lapses and dropped from the queue; a
// waiter that keeps attempting behind it gets the key.
func TestHandoffSkipsDeadWaiter(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t, func(o *options) { o.waiterLive = 150 * time.Millisecond })
	ctx := context.Background()
	holder := testkit.MustAcquire(t, d, "dead")
	dead, live := driver.NewLockID(), driver.NewLockID()
	for _, id := range []string{dead, live} {
		if r := queuedAttempt(t, d, "dead", id); r.Acquired {
			t.Fatalf("queued attempt = %+v", r)
		}
	}
	time.Sleep(250 * time.Millisecond) // both places lapse; only live renews
	if r := queuedAttempt(t, d, "dead", live); r.Acquired {
		t.Fatalf("renewing attempt = %+v", r)
	}
	if _, err := d.Release(ctx, "", holder.LockID); err != nil {
		t.Fatal(err)
	}
	info, err := d.LookupByKey(ctx, "dead")
	if err != nil || info == nil || info.LockID != live {
		t.Fatalf("holder after the release = %+v, %v; want the live waiter %s (the dead one is %s)", info, err, live, dead)
	}
	if n := waiterCount(t, d, "dead"); n != 0 {
		t.Fatalf("%d queued waiters; want 0 (the dead one dropped)", n)
	}
}

// TestUnheardWaiterRenew: a waiter of a driver without notifications
// (wake-ups off) polls for its grant, so its Renew is unheardRenew.
// Conformance case W10 covers how it queues and claims.
func TestUnheardWaiterRenew(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	off := newDriver(t, db.pool, WithWakeups(false))
	w, err := off.WatchHandoff(context.Background(), "k")
	if err != nil {
		t.Fatalf("WatchHandoff without wake-ups = %v; want a waiter", err)
	}
	defer w.Stop()
	if w.Renew != unheardRenew {
		t.Errorf("Renew of a waiter without notifications = %v; want %v", w.Renew, unheardRenew)
	}
}

// TestParseGrant: grant payloads decode; anything else is not a grant.
func TestParseGrant(t *testing.T) {
	id := driver.NewLockID()
	tests := []struct {
		msg    string
		wantOK bool
		want   grant
	}{
		{"g:" + id + "|000000000000042|1700000000000|1699999970000", true, grant{fence: 42, exp: 1700000000000}},
		{"g:" + id + "|000000000000042|1700000000000", false, grant{}},
		{"g:" + id + "|42|1700000000000|1", false, grant{}}, // fences are 15 digits
		{"g:" + id + "|000000000000042|x|1", false, grant{}},
		{"g:short|000000000000042|1|1", false, grant{}},
		{payloadFor("key"), false, grant{}},
		{"", false, grant{}},
	}
	for _, tt := range tests {
		gotID, g, ok := parseGrant(tt.msg)
		if ok != tt.wantOK || (ok && (gotID != id || g != tt.want)) {
			t.Errorf("parseGrant(%q) = %q, %+v, %v; want %+v, %v", tt.msg, gotID, g, ok, tt.want, tt.wantOK)
		}
	}
}
