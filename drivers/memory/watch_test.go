package memory

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard/internal/testkit"
)

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWatchRelease(t *testing.T) {
	tests := []struct {
		name  string
		cause func(t *testing.T, d *Driver, clk *fakeClock, lockID string)
		want  bool
	}{
		{"release", func(t *testing.T, d *Driver, _ *fakeClock, id string) {
			d.Release(bg, "", id)
		}, true},
		{"extend", func(t *testing.T, d *Driver, _ *fakeClock, id string) {
			d.Extend(bg, "", id, time.Hour)
		}, false},
		{"contended acquire", func(t *testing.T, d *Driver, _ *fakeClock, _ string) {
			d.Acquire(bg, "w", time.Second)
		}, false},
		{"other key released", func(t *testing.T, d *Driver, _ *fakeClock, _ string) {
			r := mustAcquire(t, d, "other", time.Second)
			d.Release(bg, "", r.LockID)
		}, false},
		{"foreign release", func(t *testing.T, d *Driver, _ *fakeClock, _ string) {
			d.Release(bg, "", "AAAAAAAAAAAAAAAAAAAAAA")
		}, false},
		{"expiry alone", func(t *testing.T, d *Driver, clk *fakeClock, _ string) {
			clk.Advance(time.Hour)
			isLocked(t, d, "w")
		}, false},
		{"expired lock overwritten", func(t *testing.T, d *Driver, clk *fakeClock, _ string) {
			clk.Advance(time.Hour)
			mustAcquire(t, d, "w", time.Second)
		}, true},
		{"cleanup in IsLocked", func(t *testing.T, d *Driver, clk *fakeClock, _ string) {
			clk.Advance(time.Hour)
			d.cleanupInIsLocked = true
			isLocked(t, d, "w")
		}, true},
		{"sweep", func(t *testing.T, d *Driver, clk *fakeClock, _ string) {
			clk.Advance(time.Hour)
			sweepAll(d)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, clk := newTest(t)
			r := mustAcquire(t, d, "w", time.Second)
			ch1 := testkit.WatchRelease(t, d, "w")
			ch2 := testkit.WatchRelease(t, d, "w")
			if signalled(ch1) || signalled(ch2) {
				t.Fatal("signal before any change")
			}
			tt.cause(t, d, clk, r.LockID)
			if got1, got2 := signalled(ch1), signalled(ch2); got1 != tt.want || got2 != tt.want {
				t.Fatalf("signalled = %v, %v; want %v", got1, got2, tt.want)
			}
		})
	}
}

func TestWatchCoalescesAndNeverBlocks(t *testing.T) {
	d, _ := newTest(t)
	ch := testkit.WatchRelease(t, d, "c")
	for range 5 { // nobody reads: sends must not block
		r := mustAcquire(t, d, "c", time.Second)
		d.Release(bg, "", r.LockID)
	}
	if !signalled(ch) {
		t.Fatal("no signal")
	}
	if signalled(ch) {
		t.Fatal("signals did not coalesce")
	}
}

func TestWatchStop(t *testing.T) {
	d, _ := newTest(t)
	ch, stop, err := d.WatchRelease(bg, "s")
	if err != nil {
		t.Fatal(err)
	}
	keep, stopKeep, _ := d.WatchRelease(bg, "s")
	defer stopKeep()
	stop()
	stop() // idempotent
	r := mustAcquire(t, d, "s", time.Second)
	d.Release(bg, "", r.LockID)
	if signalled(ch) {
		t.Fatal("stopped watcher signalled")
	}
	if !signalled(keep) {
		t.Fatal("remaining watcher not signalled")
	}
	stopKeep()
	if c := d.counts(); c.Watched != 0 {
		t.Fatalf("watchers left after stop: %+v", c)
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	d, _ := newTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, stop, err := d.WatchRelease(ctx, "ctx")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for d.counts().Watched != 0 {
		if time.Now().After(deadline) {
			t.Fatal("watcher not removed after ctx was cancelled")
		}
		time.Sleep(time.Millisecond)
	}
	r := mustAcquire(t, d, "ctx", time.Second)
	d.Release(bg, "", r.LockID)
	if signalled(ch) {
		t.Fatal("watcher of a cancelled ctx signalled")
	}
	stop() // still safe after the context ended it
}
