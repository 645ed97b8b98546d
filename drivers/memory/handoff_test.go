package memory

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// waiterOf returns the driver state behind h, whose first field h is.
func waiterOf(h *driver.Handoff) *waiter {
	if unsafe.Offsetof(waiter{}.h) != 0 {
		panic("waiter.h is not the first field")
	}
	return (*waiter)(unsafe.Pointer(h))
}

// queue returns the IDs queued for the normalised key, head first.
func queue(d *Driver, key string) []string {
	sh := d.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var ids []string
	ks := sh.keys[key]
	if ks == nil {
		return nil
	}
	for w := ks.qhead; w != nil; w = w.next {
		ids = append(ids, w.id)
	}
	// The back links must agree.
	var back []string
	for w := ks.qtail; w != nil; w = w.prev {
		back = append(back, w.id)
	}
	slices.Reverse(back)
	if !slices.Equal(ids, back) {
		panic("queue links disagree")
	}
	return ids
}

// idOf returns the waiter's ID.
func idOf(h *driver.Handoff) string {
	w := waiterOf(h)
	w.sh.mu.Lock()
	defer w.sh.mu.Unlock()
	return w.id
}

func mustWait(t *testing.T, h *driver.Handoff, ttl time.Duration) {
	t.Helper()
	r, err := h.Acquire(bg, ttl)
	if err != nil || r.Acquired || r.Reason != driver.ReasonLocked {
		t.Fatalf("waiter attempt = %+v, %v; want contended", r, err)
	}
}

func mustClaim(t *testing.T, h *driver.Handoff, ttl time.Duration) driver.AcquireResult {
	t.Helper()
	r, err := h.Acquire(bg, ttl)
	if err != nil || !r.Acquired {
		t.Fatalf("waiter attempt = %+v, %v; want acquired", r, err)
	}
	return r
}

func mustRelease(t *testing.T, d *Driver, id string) {
	t.Helper()
	if r, err := d.Release(bg, "", id); err != nil || !r.OK {
		t.Fatalf("Release(%s) = %+v, %v", id, r, err)
	}
}

// signals reports which of hs hold a signal, consuming them.
func signals(hs ...*driver.Handoff) []bool {
	out := make([]bool, len(hs))
	for i, h := range hs {
		out[i] = signalled(h.C)
	}
	return out
}

func TestHandoffFIFO(t *testing.T) {
	const key = "handoff:fifo"
	d, clk := newTest(t)
	holder := mustAcquire(t, d, key, time.Minute)
	ttls := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}
	var hs []*driver.Handoff
	for _, ttl := range ttls {
		h := d.WarmHandoff(key)
		defer h.Stop()
		if signalled(h.C) {
			t.Fatal("WarmHandoff: initial signal")
		}
		mustWait(t, h, time.Second)
		mustWait(t, h, ttl) // keeps its place; the latest TTL counts
		hs = append(hs, h)
	}
	wantQueue := []string{idOf(hs[0]), idOf(hs[1]), idOf(hs[2])}
	if diff := cmp.Diff(wantQueue, queue(d, key)); diff != "" {
		t.Fatalf("queue (-want +got):\n%s", diff)
	}

	prevID, prevFence := holder.LockID, holder.Fence
	for i, h := range hs {
		clk.Advance(time.Second)
		mustRelease(t, d, prevID)
		// Only the head is signalled, and it holds the lock already.
		want := make([]bool, len(hs))
		want[i] = true
		if diff := cmp.Diff(want, signals(hs...)); diff != "" {
			t.Fatalf("release %d: signals (-want +got):\n%s", i, diff)
		}
		if r, err := d.Acquire(bg, key, time.Second); err != nil || r.Acquired {
			t.Fatalf("plain Acquire of a granted key = %+v, %v", r, err)
		}
		if !isLocked(t, d, key) {
			t.Fatal("granted key not locked")
		}
		id := idOf(hs[i])
		info, err := d.LookupByID(bg, id)
		if err != nil || info == nil || info.LockID != id || info.Fence != prevFence+1 {
			t.Fatalf("LookupRawByID(waiter) = %+v, %v", info, err)
		}
		r := mustClaim(t, h, time.Hour) // the grant, with the TTL it queued with
		want2 := driver.AcquireResult{Acquired: true, LockID: id, Fence: prevFence + 1, ExpiresAtMs: clk.Ms() + ttls[i].Milliseconds()}
		if diff := cmp.Diff(want2, r); diff != "" {
			t.Fatalf("claim %d (-want +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(wantQueue[i+1:], queue(d, key), cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
			t.Fatalf("queue after grant %d (-want +got):\n%s", i, diff)
		}
		prevID, prevFence = r.LockID, r.Fence
	}
	if e, err := d.Extend(bg, "", prevID, time.Minute); err != nil || !e.OK {
		t.Fatalf("Extend(granted) = %+v, %v", e, err)
	}
	mustRelease(t, d, prevID)
	if isLocked(t, d, key) {
		t.Fatal("locked after the last release with an empty queue")
	}
	if f := fenceOf(d, key); f != 4 {
		t.Fatalf("fence = %d; want 4", f)
	}
}

func TestHandoffLeave(t *testing.T) {
	const key = "handoff:leave"
	tests := []struct {
		name string
		// run gets the holder's lock ID and three queued waiters; it returns
		// the waiter expected to hold the key at the end (-1: nobody).
		run  func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int
		want int
	}{
		{"leave before grant", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			hs[0].Stop()
			mustRelease(t, d, holder)
			return 1
		}, 1},
		{"leave from the middle", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			hs[1].Stop()
			mustRelease(t, d, holder)
			r := mustClaim(t, hs[0], time.Second)
			mustRelease(t, d, r.LockID)
			return 2
		}, 2},
		{"leave after grant hands on", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			mustRelease(t, d, holder)
			id0 := idOf(hs[0])
			hs[0].Stop()
			if r, _ := d.Release(bg, "", id0); r.OK || r.Detail != driver.DetailNotFound {
				t.Errorf("Release(stopped waiter's grant) = %+v; want not-found", r)
			}
			return 1
		}, 1},
		{"stop is idempotent", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			mustRelease(t, d, holder)
			hs[0].Stop()
			hs[0].Stop()
			return 1
		}, 1},
		{"stop after claim keeps the lock", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			mustRelease(t, d, holder)
			mustClaim(t, hs[0], time.Second)
			hs[0].Stop()
			return 0
		}, 0},
		{"everyone leaves", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			for _, h := range hs {
				h.Stop()
			}
			mustRelease(t, d, holder)
			return -1
		}, -1},
		{"attempt after stop does not queue", func(t *testing.T, d *Driver, holder string, hs []*driver.Handoff) int {
			hs[0].Stop()
			mustWait(t, hs[0], time.Second)
			if q := queue(d, key); slices.Contains(q, idOf(hs[0])) {
				t.Errorf("stopped waiter queued again: %v", q)
			}
			mustRelease(t, d, holder)
			return 1
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTest(t)
			holder := mustAcquire(t, d, key, time.Minute)
			hs := make([]*driver.Handoff, 3)
			ids := make([]string, 3)
			for i := range hs {
				hs[i] = d.WarmHandoff(key)
				mustWait(t, hs[i], time.Minute)
				ids[i] = idOf(hs[i])
			}
			defer func() {
				for _, h := range hs {
					h.Stop()
				}
			}()
			got := tt.run(t, d, holder.LockID, hs)
			if got != tt.want {
				t.Fatalf("run returned %d; want %d", got, tt.want)
			}
			info, err := d.LookupByKey(bg, key)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want < 0 && info != nil:
				t.Fatalf("key held by %s; want free", info.LockID)
			case tt.want >= 0 && (info == nil || info.LockID != ids[tt.want]):
				t.Fatalf("key held by %+v; want waiter %d (%s)", info, tt.want, ids[tt.want])
			}
			if tt.want > 0 && !slices.Contains(queue(d, key), ids[tt.want]) {
				// A waiter granted the key is signalled and claims it.
				if !signalled(hs[tt.want].C) {
					t.Error("granted waiter not signalled")
				}
				r := mustClaim(t, hs[tt.want], time.Second)
				if r.LockID != ids[tt.want] {
					t.Errorf("claimed %s; want %s", r.LockID, ids[tt.want])
				}
			}
		})
	}
}

func TestHandoffFreeKey(t *testing.T) {
	const key = "handoff:free"
	t.Run("uncontended attempt acquires without queueing", func(t *testing.T) {
		d, clk := newTest(t)
		if h := d.WarmHandoff(key); h != nil {
			t.Fatal("WarmHandoff(free key) != nil")
		}
		h, err := d.WatchHandoff(bg, key)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		r := mustClaim(t, h, 5*time.Second)
		if r.Fence != 1 || r.ExpiresAtMs != clk.Ms()+5000 || !driver.ValidLockID(r.LockID) {
			t.Fatalf("attempt = %+v", r)
		}
		if q := queue(d, key); len(q) != 0 {
			t.Fatalf("queue %v; want empty", q)
		}
		h.Stop()
		if !isLocked(t, d, key) {
			t.Fatal("Stop released an acquired (not granted) lock")
		}
	})
	t.Run("expired lock: any attempt takes the key", func(t *testing.T) {
		d, clk := newTest(t)
		mustAcquire(t, d, key, time.Second)
		h0, h1 := d.WarmHandoff(key), d.WarmHandoff(key)
		defer h0.Stop()
		defer h1.Stop()
		mustWait(t, h0, time.Second)
		mustWait(t, h1, time.Second)
		clk.Advance(time.Second + driver.Tolerance)
		// The second waiter comes first: it takes the free key and leaves
		// the queue; the head is signalled by the overwrite.
		r := mustClaim(t, h1, time.Second)
		if r.Fence != 2 {
			t.Fatalf("fence %v; want 2", r.Fence)
		}
		if diff := cmp.Diff([]string{idOf(h0)}, queue(d, key)); diff != "" {
			t.Fatalf("queue (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]bool{true, false}, signals(h0, h1)); diff != "" {
			t.Fatalf("signals (-want +got):\n%s", diff)
		}
		id0 := idOf(h0)
		mustRelease(t, d, r.LockID)
		if r := mustClaim(t, h0, time.Second); r.Fence != 3 || r.LockID != id0 {
			t.Fatalf("head's claim = %+v", r)
		}
	})
	t.Run("sweep signals the head", func(t *testing.T) {
		d, clk := newTest(t)
		mustAcquire(t, d, key, time.Second)
		h := d.WarmHandoff(key)
		defer h.Stop()
		mustWait(t, h, time.Second)
		clk.Advance(time.Hour)
		sweepAll(d)
		if !signalled(h.C) {
			t.Fatal("head not signalled by the sweep")
		}
		if r := mustClaim(t, h, time.Second); r.Fence != 2 {
			t.Fatalf("claim = %+v", r)
		}
	})
	t.Run("grant expired unclaimed", func(t *testing.T) {
		d, clk := newTest(t)
		holder := mustAcquire(t, d, key, time.Minute)
		h := d.WarmHandoff(key)
		defer h.Stop()
		mustWait(t, h, time.Second)
		mustRelease(t, d, holder.LockID)
		granted := idOf(h)
		clk.Advance(time.Second + driver.Tolerance)
		r := mustClaim(t, h, time.Second)
		if r.LockID == granted || r.Fence != 3 {
			t.Fatalf("claim after the grant expired = %+v; want a new ID and fence 3", r)
		}
		if rr, _ := d.Release(bg, "", granted); rr.OK {
			t.Fatal("the expired grant's ID still releases")
		}
	})
}

func TestWatchHandoff(t *testing.T) {
	d, _ := newTest(t)
	h, err := d.WatchHandoff(bg, "handoff:watch")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if !signalled(h.C) {
		t.Error("WatchHandoff: no initial signal")
	}
	if h.Renew != 0 {
		t.Errorf("Renew = %v; want 0", h.Renew)
	}
	if _, err := d.WatchHandoff(bg, ""); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("WatchHandoff(\"\") = %v; want InvalidArgument", err)
	}
	if h := d.WarmHandoff(string([]byte{0xff})); h != nil {
		t.Error("WarmHandoff(invalid key) != nil")
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := d.WatchHandoff(ctx, "k"); !errors.Is(err, driver.ErrAborted) {
		t.Errorf("WatchHandoff(cancelled) = %v; want Aborted", err)
	}
	if _, err := h.Acquire(ctx, time.Second); !errors.Is(err, driver.ErrAborted) {
		t.Errorf("Acquire(cancelled) = %v; want Aborted", err)
	}
	if _, err := h.Acquire(bg, 0); !errors.Is(err, driver.ErrInvalidArgument) {
		t.Errorf("Acquire(ttl 0) = %v; want InvalidArgument", err)
	}
	var _ driver.HandoffWatcher = d
}

func TestHandoffFenceOverflow(t *testing.T) {
	const key = "handoff:overflow"
	d, _ := newTest(t)
	holder := mustAcquire(t, d, key, time.Minute)
	h := d.WarmHandoff(key)
	defer h.Stop()
	mustWait(t, h, time.Second)
	setFence(d, key, int64(driver.FenceMax))
	mustRelease(t, d, holder.LockID)
	if !signalled(h.C) {
		t.Fatal("head not signalled")
	}
	if isLocked(t, d, key) {
		t.Fatal("a lock was granted past FenceMax")
	}
	if _, err := h.Acquire(bg, time.Second); !errors.Is(err, driver.ErrInternal) {
		t.Fatalf("attempt past FenceMax = %v; want Internal", err)
	}
}

// TestHandoffConcurrent races waiters, plain acquisitions, releases and
// stops on one key (run with -race): exclusion holds, every grant is
// claimed or handed on, and nothing stays queued or locked.
func TestHandoffConcurrent(t *testing.T) {
	const key = "handoff:race"
	d := New()
	var (
		inCS atomic.Int32
		wg   sync.WaitGroup
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				h := d.WarmHandoff(key)
				if h == nil { // the key was free
					var err error
					if h, err = d.WatchHandoff(bg, key); err != nil {
						t.Error(err)
						return
					}
				}
				var r driver.AcquireResult
				for n := 0; ; n++ {
					var err error
					if g%4 == 3 && n == 0 {
						r, err = d.Acquire(bg, key, time.Minute) // a plain barger
					} else {
						r, err = h.Acquire(bg, time.Minute)
					}
					if err != nil {
						t.Error(err)
						return
					}
					if r.Acquired || (i%5 == 0 && n == 3) { // some give up
						break
					}
					select {
					case <-h.C:
					case <-time.After(time.Millisecond):
					}
				}
				h.Stop()
				if !r.Acquired {
					continue
				}
				if !inCS.CompareAndSwap(0, 1) {
					t.Error("two holders")
				}
				inCS.Store(0)
				if rr, err := d.Release(bg, "", r.LockID); err != nil || !rr.OK {
					t.Errorf("Release = %+v, %v", rr, err)
				}
			}
		}()
	}
	wg.Wait()
	if q := queue(d, key); len(q) != 0 {
		t.Errorf("queue %v left behind", q)
	}
	if isLocked(t, d, key) {
		t.Error("key left locked")
	}
}

// contend runs n goroutines taking key through a Guard over d in turn,
// each holding it for hold, until ctx ends; it returns each goroutine's
// wins and fails the test on overlapping holders.
func contend(t *testing.T, ctx context.Context, g *syncguard.Guard[Capabilities], key string, n int, hold time.Duration) []int {
	t.Helper()
	var (
		inCS atomic.Int32
		wg   sync.WaitGroup
		wins = make([]int, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l, err := g.Acquire(ctx, key, syncguard.AutoExtend(false), syncguard.TTL(time.Minute))
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Acquire: %v", err)
					}
					return
				}
				if !inCS.CompareAndSwap(0, 1) {
					t.Error("two holders at once")
				}
				wins[i]++
				time.Sleep(hold)
				inCS.Store(0)
				if ok, err := l.Release(context.Background()); !ok || err != nil {
					t.Errorf("Release = %v, %v", ok, err)
				}
			}
		}()
	}
	wg.Wait()
	return wins
}

func checkFair(t *testing.T, wins []int) {
	t.Helper()
	lo, hi := slices.Min(wins), slices.Max(wins)
	t.Logf("wins %v (min %d, max %d)", wins, lo, hi)
	if hi == 0 || float64(lo) < 0.5*float64(hi) {
		t.Errorf("unfair: fewest wins %d < 0.5 × most wins %d", lo, hi)
	}
}

// TestGuardFairness is the starvation scenario: 16 goroutines contend for
// one key through a Guard, each holding it for 1 ms. With the hand-off,
// every release grants the key to the oldest waiter, so wins are even.
func TestGuardFairness(t *testing.T) {
	t.Run("synctest", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := syncguard.New(New())
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			wins := contend(t, ctx, g, "fair", 16, time.Millisecond)
			checkFair(t, wins)
			if lo, hi := slices.Min(wins), slices.Max(wins); hi-lo > 2 {
				t.Errorf("wins spread %d..%d; want FIFO (within 2)", lo, hi)
			}
		})
	})
	t.Run("real time", func(t *testing.T) {
		g := syncguard.New(New())
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		checkFair(t, contend(t, ctx, g, "fair", 16, time.Millisecond))
	})
}
