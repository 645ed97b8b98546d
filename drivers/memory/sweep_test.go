package memory

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// observation is everything a caller can read about a set of names.
type observation struct {
	Locked  map[string]bool
	ByKey   map[string]*driver.LockInfo
	ByID    map[string]*driver.LockInfo
	Records map[string]*driver.Record
	Rates   map[string]driver.RateResult
}

func observe(t *testing.T, d *Driver, keys, ids []string) observation {
	t.Helper()
	o := observation{
		Locked: map[string]bool{}, ByKey: map[string]*driver.LockInfo{},
		ByID: map[string]*driver.LockInfo{}, Records: map[string]*driver.Record{},
		Rates: map[string]driver.RateResult{},
	}
	lim := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 5}
	for _, k := range keys {
		o.Locked[k] = isLocked(t, d, k)
		o.ByKey[k], _ = d.LookupByKey(bg, k)
		o.Records[k], _ = d.GetRecord(bg, k)
		o.Rates[k], _ = d.AllowN(bg, k, lim, 0)
	}
	for _, id := range ids {
		o.ByID[id], _ = d.LookupByID(bg, id)
	}
	return o
}

// TestSweepKeepsResultsUnchanged sweeps aggressively at many points in time
// and checks that no observable result changes.
func TestSweepKeepsResultsUnchanged(t *testing.T) {
	d, clk := newTest(t)
	lim := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 5}
	var keys, ids []string
	for i := range 200 {
		k := "sweep:" + strconv.Itoa(i)
		keys = append(keys, k)
		ttl := time.Duration(1+i%40) * 100 * time.Millisecond
		r := mustAcquire(t, d, k, ttl)
		ids = append(ids, r.LockID)
		if i%3 == 0 {
			d.Release(bg, "", r.LockID)
		}
		rttl := time.Duration(i%5) * 700 * time.Millisecond // 0: no expiry
		if _, err := d.PutRecord(bg, k, 1, []byte(k), rttl); err != nil {
			t.Fatal(err)
		}
		d.AllowN(bg, k, lim, i%6)
	}
	for step := range 40 {
		clk.Advance(250 * time.Millisecond)
		before := observe(t, d, keys, ids)
		for range 50 { // more than enough budget to drain every shard
			sweepAll(d)
		}
		after := observe(t, d, keys, ids)
		if diff := cmp.Diff(before, after); diff != "" {
			t.Fatalf("step %d: sweeping changed results (-before +after):\n%s", step, diff)
		}
	}
	// Past every lock's cleanup and the fence margin, only the records
	// without a TTL remain: key states (fence counters) go too.
	clk.Advance(time.Duration(driver.FenceMarginMs) * time.Millisecond)
	for range 50 {
		sweepAll(d)
	}
	c := d.counts()
	want := counts{Records: 40}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("storage after everything expired (-want +got):\n%s", diff)
	}
}

// TestMemoryBounded: a long run of short-lived, never-released locks,
// records and rate state on distinct keys keeps only a bounded amount of
// data, fence counters included.
func TestMemoryBounded(t *testing.T) {
	d, clk := newTest(t)
	lim := driver.RateLimit{Limit: 100, Period: time.Second, Burst: 1}
	const n = 20_000
	maxLive := 0
	for i := range n {
		clk.Advance(time.Millisecond)
		k := "bounded:" + strconv.Itoa(i)
		mustAcquire(t, d, k, 10*time.Millisecond)
		d.PutRecord(bg, k, 1, nil, 10*time.Millisecond)
		d.AllowN(bg, k, lim, 1)
		if i%1000 == 999 {
			c := d.counts()
			maxLive = max(maxLive, c.Locks, c.Records, c.Rates, c.Keys)
			if c.Locks != c.IDs || c.Locks != c.LockHeap || c.Records != c.RecHeap || c.Rates != c.RateHeap || c.Keys != c.KeepHeap {
				t.Fatalf("indexes out of step: %+v", c)
			}
		}
	}
	// Locks live for TTL + CleanupGuardMs = 2010 ms ≈ 2010 writes, key
	// states for FenceMarginMs = 5000 ms ≈ 5000 writes; records and rate
	// state for 10 ms; allow a per-shard backlog.
	if maxLive > int(driver.FenceMarginMs)+shardCount*sweepBudget {
		t.Fatalf("up to %d entries of one kind kept; want bounded", maxLive)
	}
	if c := d.counts(); c.Keys >= n/2 {
		t.Fatalf("fence counters = %d after %d keys; want bounded by the live ones", c.Keys, n)
	}
}

// heapTestItem is a minimal heap entry.
type heapTestItem struct {
	id   int
	node hnode
}

func (x *heapTestItem) hn() *hnode { return &x.node }

func TestMinHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h minHeap[*heapTestItem]
	items := make([]*heapTestItem, 100)
	at := map[*heapTestItem]int64{}
	for i := range items {
		items[i] = &heapTestItem{id: i}
	}
	check := func() {
		t.Helper()
		if len(h.s) != len(at) {
			t.Fatalf("heap has %d entries, want %d", len(h.s), len(at))
		}
		for i, s := range h.s {
			if s.x.node.pos != i+1 || s.at != at[s.x] {
				t.Fatalf("entry %d: pos %d at %d, want %d", i, s.x.node.pos, s.at, at[s.x])
			}
			if i > 0 && h.s[(i-1)/2].at > s.at {
				t.Fatalf("heap order broken at %d", i)
			}
		}
	}
	for range 20_000 {
		x := items[rng.IntN(len(items))]
		switch rng.IntN(4) {
		case 0, 1:
			v := rng.Int64N(1000)
			h.set(x, v)
			at[x] = v
		case 2:
			h.remove(x)
			delete(at, x)
			if x.node.pos != 0 {
				t.Fatal("removed entry keeps a position")
			}
		case 3:
			if top, v, ok := h.peek(); ok {
				h.remove(top)
				delete(at, top)
				for _, w := range at {
					if w < v {
						t.Fatal("peek did not return the minimum")
					}
				}
			}
		}
		check()
	}
}
