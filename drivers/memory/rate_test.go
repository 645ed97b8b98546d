package memory

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// refGCRA is a line-by-line transcription of the go-redis/redis_rate Lua
// script, in absolute time and with a floating-point remaining, to check
// the driver's relative integer arithmetic against.
type refGCRA struct{ tat map[string]time.Time }

func (r *refGCRA) allowN(now time.Time, key string, lim driver.RateLimit, n int) driver.RateResult {
	emissionInterval := lim.Period / time.Duration(lim.Limit)
	increment := emissionInterval * time.Duration(n)
	burstOffset := emissionInterval * time.Duration(lim.Burst)

	tat, ok := r.tat[key]
	if !ok {
		tat = now
	}
	if now.After(tat) {
		tat = now
	}
	newTat := tat.Add(increment)
	allowAt := newTat.Add(-burstOffset)
	diff := now.Sub(allowAt)
	remaining := float64(diff) / float64(emissionInterval)
	if remaining < 0 {
		return driver.RateResult{Allowed: 0, Remaining: 0, RetryAfter: -diff, ResetAfter: tat.Sub(now)}
	}
	resetAfter := newTat.Sub(now)
	if resetAfter > 0 {
		r.tat[key] = newTat
	}
	return driver.RateResult{Allowed: n, Remaining: int(math.Floor(remaining)), ResetAfter: resetAfter}
}

func TestAllowNTable(t *testing.T) {
	perSecond10 := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 10}
	slowBurst3 := driver.RateLimit{Limit: 1, Period: time.Second, Burst: 3}
	ms := time.Millisecond
	tests := []struct {
		name    string
		advance time.Duration
		reset   bool
		key     string
		lim     driver.RateLimit
		n       int
		want    driver.RateResult
	}{
		{"first", 0, false, "a", perSecond10, 1, driver.RateResult{Allowed: 1, Remaining: 9, ResetAfter: 100 * ms}},
		{"two more", 0, false, "a", perSecond10, 2, driver.RateResult{Allowed: 2, Remaining: 7, ResetAfter: 300 * ms}},
		{"too many", 0, false, "a", perSecond10, 1000, driver.RateResult{RetryAfter: 99300 * ms, ResetAfter: 300 * ms}},
		{"inspect", 0, false, "a", perSecond10, 0, driver.RateResult{Remaining: 7, ResetAfter: 300 * ms}},
		{"rest of burst", 0, false, "a", perSecond10, 7, driver.RateResult{Allowed: 7, Remaining: 0, ResetAfter: time.Second}},
		{"empty", 0, false, "a", perSecond10, 1, driver.RateResult{RetryAfter: 100 * ms, ResetAfter: time.Second}},
		{"inspect empty", 0, false, "a", perSecond10, 0, driver.RateResult{Remaining: 0, ResetAfter: time.Second}},
		{"refilled one", 100 * ms, false, "a", perSecond10, 1, driver.RateResult{Allowed: 1, Remaining: 0, ResetAfter: time.Second}},
		{"half way", 550 * ms, false, "a", perSecond10, 0, driver.RateResult{Remaining: 5, ResetAfter: 450 * ms}},
		{"other key untouched", 0, false, "b", perSecond10, 0, driver.RateResult{Remaining: 10}},
		{"fully refilled", 5 * time.Second, false, "a", perSecond10, 1, driver.RateResult{Allowed: 1, Remaining: 9, ResetAfter: 100 * ms}},
		{"after reset", 0, true, "a", perSecond10, 10, driver.RateResult{Allowed: 10, Remaining: 0, ResetAfter: time.Second}},
		{"burst 3", 0, false, "c", slowBurst3, 1, driver.RateResult{Allowed: 1, Remaining: 2, ResetAfter: time.Second}},
		{"burst 3 over", 0, false, "c", slowBurst3, 3, driver.RateResult{RetryAfter: time.Second, ResetAfter: time.Second}},
		{"burst 3 rest", 0, false, "c", slowBurst3, 2, driver.RateResult{Allowed: 2, Remaining: 0, ResetAfter: 3 * time.Second}},
		{"more than burst", 0, false, "d", slowBurst3, 4, driver.RateResult{RetryAfter: time.Second}},
		{"normalised key", 0, false, "cafe\u0301", perSecond10, 4, driver.RateResult{Allowed: 4, Remaining: 6, ResetAfter: 400 * ms}},
		{"same key composed", 0, false, "caf\u00e9", perSecond10, 0, driver.RateResult{Remaining: 6, ResetAfter: 400 * ms}},
	}
	d, clk := newTest(t)
	for _, tt := range tests {
		clk.Advance(tt.advance)
		if tt.reset {
			if err := d.ResetRate(bg, tt.key); err != nil {
				t.Fatal(err)
			}
		}
		got, err := d.AllowN(bg, tt.key, tt.lim, tt.n)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Fatalf("%s: AllowN (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestAllowNMatchesReference drives the driver and the reference with the
// same random sequence.
func TestAllowNMatchesReference(t *testing.T) {
	limits := []driver.RateLimit{
		{Limit: 10, Period: time.Second, Burst: 10},
		{Limit: 3, Period: time.Second, Burst: 1},    // ei = 333333333 ns, truncated
		{Limit: 100, Period: time.Minute, Burst: 20}, // ei = 600 ms
		{Limit: 7, Period: 10 * time.Millisecond, Burst: 50},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	d, clk := newTest(t)
	ref := &refGCRA{tat: map[string]time.Time{}}
	keys := []string{"k0", "k1", "k2"}
	for i := range 20_000 {
		clk.Advance(time.Duration(rng.Int64N(int64(400 * time.Millisecond))))
		key := keys[rng.IntN(len(keys))]
		// Keep one limit per key, as callers do.
		lim := limits[(int(key[1]-'0')+i/5000)%len(limits)]
		if rng.IntN(200) == 0 {
			d.ResetRate(bg, key)
			delete(ref.tat, key)
			continue
		}
		n := rng.IntN(6)
		want := ref.allowN(clk.Now(), key, lim, n)
		got, err := d.AllowN(bg, key, lim, n)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d (key %s, lim %+v, n %d): (-ref +driver):\n%s", i, key, lim, n, diff)
		}
	}
}

func TestAllowNZeroDoesNotWrite(t *testing.T) {
	d, clk := newTest(t)
	lim := driver.RateLimit{Limit: 1, Period: time.Second, Burst: 1}
	if r, _ := d.AllowN(bg, "z", lim, 0); r.Remaining != 1 || r.Allowed != 0 {
		t.Fatalf("inspect = %+v", r)
	}
	if c := d.counts(); c.Rates != 0 || c.RateHeap != 0 {
		t.Fatalf("n=0 wrote state: %+v", c)
	}
	d.AllowN(bg, "z", lim, 1)
	d.AllowN(bg, "z", lim, 1) // refused: writes nothing either
	if c := d.counts(); c.Rates != 1 || c.RateHeap != 1 {
		t.Fatalf("state after allow: %+v", c)
	}
	// Spent state is swept without changing results.
	clk.Advance(time.Second)
	before, _ := d.AllowN(bg, "z", lim, 0)
	sweepAll(d)
	after, _ := d.AllowN(bg, "z", lim, 0)
	if c := d.counts(); c.Rates != 0 || c.RateHeap != 0 {
		t.Fatalf("spent state not swept: %+v", c)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("sweep changed the result (-before +after):\n%s", diff)
	}
}
