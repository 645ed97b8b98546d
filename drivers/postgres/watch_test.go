package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/testkit"
)

// TestWatchFanOutAndReconnect: watchers of one key are all woken, watchers
// of another key are not; after the LISTEN connection is killed the
// listener reconnects, wakes every watcher (notifications may have been
// missed) and delivers later releases again.
func TestWatchFanOutAndReconnect(t *testing.T) {
	t.Parallel()
	// A lock table name of its own, so that terminating the LISTEN
	// connection by its application name hits only this test's.
	db, tables := newOwnLockTableDB(t, "reconnect_")
	d := newDriver(t, db.pool, tables)
	ctx := t.Context()
	a1 := testkit.WatchRelease(t, d, "watch:a")
	a2 := testkit.WatchRelease(t, d, "watch:a")
	b := testkit.WatchRelease(t, d, "watch:b")
	// The keys are free: each subscription signalled once at once.
	for _, ch := range []<-chan struct{}{a1, a2, b} {
		testkit.WaitSignal(t, ch, time.Second, "initial signal of a free key")
	}

	release := func(key string) {
		t.Helper()
		r, err := d.Acquire(ctx, key, time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
			t.Fatalf("Release = %+v, %v", rr, err)
		}
	}
	release("watch:a")
	testkit.WaitSignal(t, a1, time.Second, "first watcher of a")
	testkit.WaitSignal(t, a2, time.Second, "second watcher of a")
	testkit.NoSignal(t, b, 200*time.Millisecond, "watcher of b after a release of a")

	// Kill the LISTEN connection.
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()`, d.q.listenApp).Scan(&n); err != nil || n == 0 {
		t.Fatalf("terminating the LISTEN connection: %d, %v", n, err)
	}
	testkit.WaitSignal(t, b, 5*time.Second, "reconnection wake-up")
	testkit.WaitSignal(t, a1, time.Second, "reconnection wake-up")
	// Wait until LISTEN is active again, then releases arrive again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.lis.mu.Lock()
		up := d.lis.up
		d.lis.mu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not reconnect within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select { // drain a2's coalesced reconnection signal
	case <-a2:
	default:
	}
	release("watch:b")
	testkit.WaitSignal(t, b, time.Second, "release of b after the reconnection")
	testkit.NoSignal(t, a2, 200*time.Millisecond, "watcher of a after a release of b")
}

// TestWatchStopAndClose: stop is idempotent, ctx ends a subscription,
// Close stops the listener (goleak in TestMain checks the goroutine) and
// later subscriptions fail; a disabled wake-up fails with ErrUnsupported.
func TestWatchStopAndClose(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	d, err := New(db.pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	_, stop, err := d.WatchRelease(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	stop()
	cancel()
	if n := d.lis.count; n != 0 {
		t.Errorf("%d watchers after stop; want 0", n)
	}
	_, stop2, err := d.WatchRelease(t.Context(), "k2")
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	stop2() // after Close: still fine
	if _, _, err := d.WatchRelease(t.Context(), "k3"); driver.CodeOf(err) != driver.ServiceUnavailable {
		t.Errorf("WatchRelease after Close: %v; want ServiceUnavailable", err)
	}

	off := newDriver(t, db.pool, WithWakeups(false))
	if _, _, err := off.WatchRelease(t.Context(), "k"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("WatchRelease with wake-ups off: %v; want errors.ErrUnsupported", err)
	}
	// Release still works without NOTIFY.
	r, err := off.Acquire(t.Context(), "k", time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	if rr, err := off.Release(t.Context(), "", r.LockID); err != nil || !rr.OK {
		t.Errorf("Release without NOTIFY = %+v, %v", rr, err)
	}
}

// TestWatchListenUnreachable: a LISTEN connection that cannot be made fails
// WatchRelease with a mapped error (Guard then falls back to backoff).
func TestWatchListenUnreachable(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	bad := db.cfg.ConnConfig.Copy()
	bad.Port = 1
	bad.ConnectTimeout = time.Second
	d := newDriver(t, db.pool, WithListenConfig(bad))
	_, _, err := d.WatchRelease(t.Context(), "k")
	if driver.CodeOf(err) != driver.ServiceUnavailable {
		t.Errorf("WatchRelease with an unreachable LISTEN server: %v; want ServiceUnavailable", err)
	}
}

// TestWatchSignalsFreeKeyAtOnce: a subscription to a key that is already
// free signals at once (a release just before it is not missed); one to a
// held key does not.
func TestWatchSignalsFreeKeyAtOnce(t *testing.T) {
	t.Parallel()
	_, d := newTestDriver(t)
	ctx := t.Context()
	r, err := d.Acquire(ctx, "held", time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	held := testkit.WatchRelease(t, d, "held")
	free := testkit.WatchRelease(t, d, "free")
	testkit.WaitSignal(t, free, time.Second, "subscription to a free key")
	testkit.NoSignal(t, held, 200*time.Millisecond, "subscription to a held key")
	if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
		t.Fatalf("Release = %+v, %v", rr, err)
	}
	testkit.WaitSignal(t, held, time.Second, "release of the held key")
}

// TestNotifyOnlyWhileListening: Release sends NOTIFY only while a LISTEN
// connection of the driver's lock table is connected (it is what makes a
// release pay the commit-time NOTIFY lock).
func TestNotifyOnlyWhileListening(t *testing.T) {
	t.Parallel()
	// A lock table name of its own: other tests' listeners in this
	// database would otherwise count.
	db, tables := newOwnLockTableDB(t, "notify_")
	d := newDriver(t, db.pool, tables)
	ctx := t.Context()
	raw, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Release()
	if _, err := raw.Exec(ctx, d.q.listen); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = raw.Exec(context.Background(), "UNLISTEN *") }()
	cycle := func() {
		t.Helper()
		r, err := d.Acquire(ctx, "n", time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
			t.Fatalf("Release = %+v, %v", rr, err)
		}
	}
	wait := func(d time.Duration) bool {
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		n, err := raw.Conn().WaitForNotification(wctx)
		return err == nil && n != nil
	}
	cycle()
	if wait(300 * time.Millisecond) {
		t.Error("a release sent NOTIFY while no driver listened")
	}
	testkit.WatchRelease(t, d, "other")
	cycle()
	if !wait(2 * time.Second) {
		t.Error("no NOTIFY for a release while the driver listened")
	}
}

// TestNotifyForAnotherDriversListener: a release caches the answer of its
// pg_stat_activity probe for listenerProbeTTL, yet a release that follows
// the return of another driver's (another process's) first WatchRelease
// still notifies, even when its cached answer, taken just before, was "no
// listener".
func TestNotifyForAnotherDriversListener(t *testing.T) {
	t.Parallel()
	db, tables := newOwnLockTableDB(t, "notify_")
	d := newDriver(t, db.pool, tables)
	other := newDriver(t, db.pool, tables)
	ctx := t.Context()
	for i := range 3 {
		r, err := d.Acquire(ctx, "k", time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		if i == 0 {
			// Caches "no listener" just before the other driver listens.
			r0, err := d.Acquire(ctx, "warm", time.Minute)
			if err != nil || !r0.Acquired {
				t.Fatalf("Acquire = %+v, %v", r0, err)
			}
			if _, err := d.Release(ctx, "", r0.LockID); err != nil {
				t.Fatal(err)
			}
		}
		ch, stop, err := other.WatchRelease(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
			t.Fatalf("Release = %+v, %v", rr, err)
		}
		testkit.WaitSignal(t, ch, 2*time.Second, "another driver's release")
		stop()
	}
}
