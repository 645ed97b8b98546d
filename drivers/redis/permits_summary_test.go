package redis

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// storedPermit is one permit field of a permit hash.
type storedPermit struct {
	exp, limit int64
}

// semHash is a permit hash as stored: the counter f, the summary fields
// that are present (c, m, l, x) and the permits by ID.
type semHash struct {
	f       int64
	summary map[string]int64
	permits map[string]storedPermit
}

func readSem(t *testing.T, c rueidis.Client, sem string) semHash {
	t.Helper()
	m, err := c.Do(context.Background(), c.B().Hgetall().Key(sem).Build()).AsStrMap()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", sem, err)
	}
	h := semHash{summary: map[string]int64{}, permits: map[string]storedPermit{}}
	for k, v := range m {
		switch {
		case k == "f":
			h.f, err = strconv.ParseInt(v, 10, 64)
		case len(k) == 1:
			h.summary[k], err = strconv.ParseInt(v, 10, 64)
		default:
			parts := strings.Split(v, "|")
			if len(parts) != 4 {
				t.Fatalf("permit %s = %q; want 4 fields", k, v)
			}
			var p storedPermit
			if p.exp, err = strconv.ParseInt(parts[0], 10, 64); err == nil {
				p.limit, err = strconv.ParseInt(parts[2], 10, 64)
			}
			h.permits[k] = p
		}
		if err != nil {
			t.Fatalf("field %s = %q: %v", k, v, err)
		}
	}
	return h
}

// checkSummary reports a summary that is not true of the stored permits:
// c is their number, m at most their earliest expiry, l (when present)
// their smallest limit and x (absent = 0) how many have a larger one. A
// hash without permits has no summary.
func checkSummary(t *testing.T, h semHash) {
	t.Helper()
	if len(h.permits) == 0 {
		if len(h.summary) != 0 {
			t.Errorf("summary %v of a hash without permits; want none", h.summary)
		}
		return
	}
	c, ok := h.summary["c"]
	if !ok || c != int64(len(h.permits)) {
		t.Errorf("c = %d (present %v); want %d", c, ok, len(h.permits))
	}
	minExp, minLim := int64(1<<62), int64(1<<62)
	for _, p := range h.permits {
		minExp, minLim = min(minExp, p.exp), min(minLim, p.limit)
	}
	if m, ok := h.summary["m"]; !ok || m > minExp {
		t.Errorf("m = %d (present %v); want at most the earliest expiry %d", m, ok, minExp)
	}
	l, ok := h.summary["l"]
	if !ok {
		if _, ok := h.summary["x"]; ok {
			t.Errorf("x without l: %v", h.summary)
		}
		return
	}
	var above int64
	for _, p := range h.permits {
		if p.limit > l {
			above++
		}
	}
	if l != minLim || h.summary["x"] != above {
		t.Errorf("l = %d, x = %d; want %d, %d (permits %v)", l, h.summary["x"], minLim, above, h.permits)
	}
}

func serverNowMs(t *testing.T, c rueidis.Client) int64 {
	t.Helper()
	v, err := c.Do(context.Background(), c.B().Time().Build()).AsStrSlice()
	if err != nil || len(v) != 2 {
		t.Fatalf("TIME = %v, %v", v, err)
	}
	s, err1 := strconv.ParseInt(v[0], 10, 64)
	us, err2 := strconv.ParseInt(v[1], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("TIME = %v", v)
	}
	return s*1000 + us/1000
}

// TestPermitSummary walks the permit hash's summary through the cases
// where it must change or be rebuilt from the whole hash: mixed limits, a
// release of the last permit with the smallest limit, an extension that
// shortens a permit below m, a release of the earliest permit, an expired
// permit behind a stale m, and a hash without a summary (as the previous
// release wrote it).
func TestPermitSummary(t *testing.T) {
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		c := d.Client()
		sem := func(key string) string { return mustNames(t, d, key).sem() }
		acquire := func(key string, limit int, ttl time.Duration, want bool) driver.AcquireResult {
			t.Helper()
			r, err := d.AcquirePermit(ctx, key, limit, ttl)
			if err != nil || r.Acquired != want {
				t.Fatalf("AcquirePermit(%s, %d, %v) = %+v, %v; want Acquired %v", key, limit, ttl, r, err, want)
			}
			checkSummary(t, readSem(t, c, sem(key)))
			return r
		}
		release := func(key, id string, want bool) {
			t.Helper()
			r, err := d.ReleasePermit(ctx, key, id)
			if err != nil || r.OK != want {
				t.Fatalf("ReleasePermit(%s) = %+v, %v; want OK %v", key, r, err, want)
			}
			checkSummary(t, readSem(t, c, sem(key)))
		}
		summary := func(key string) map[string]int64 { t.Helper(); return readSem(t, c, sem(key)).summary }

		t.Run("mixed limits", func(t *testing.T) {
			acquire("mix", 5, time.Minute, true)
			b := acquire("mix", 3, time.Minute, true)
			acquire("mix", 5, time.Minute, true)
			s := summary("mix")
			if s["c"] != 3 || s["l"] != 3 || s["x"] != 2 {
				t.Fatalf("summary %v; want c 3, l 3, x 2", s)
			}
			acquire("mix", 5, time.Minute, false) // 3 held, smallest limit 3
			release("mix", b.LockID, true)        // l is unknown now
			if s := summary("mix"); s["c"] != 2 || s["l"] != 0 {
				t.Fatalf("summary after the release %v; want c 2, no l", s)
			}
			acquire("mix", 5, time.Minute, true) // the whole hash is read: 2 held < 5
			if s := summary("mix"); s["c"] != 3 || s["l"] != 5 || s["x"] != 0 {
				t.Fatalf("summary %v; want c 3, l 5, x absent", s)
			}
			acquire("mix", 5, time.Minute, true)
			acquire("mix", 5, time.Minute, true)
			acquire("mix", 5, time.Minute, false)
			acquire("mix", 9, time.Minute, false)
			acquire("mix", 1, time.Minute, false)
		})

		t.Run("extension below m", func(t *testing.T) {
			acquire("short", 2, time.Minute, true)
			q := acquire("short", 2, time.Minute, true)
			acquire("short", 2, time.Minute, false)
			e, err := d.ExtendPermit(ctx, "short", q.LockID, time.Millisecond)
			if err != nil || !e.OK {
				t.Fatalf("ExtendPermit = %+v, %v", e, err)
			}
			if s := summary("short"); s["m"] != e.ExpiresAtMs {
				t.Fatalf("m = %d; want the shortened expiry %d", s["m"], e.ExpiresAtMs)
			}
			checkSummary(t, readSem(t, c, sem("short")))
			time.Sleep(driver.Tolerance + 50*time.Millisecond)
			acquire("short", 2, time.Minute, true) // q expired: pruned
			if _, ok := readSem(t, c, sem("short")).permits[q.LockID]; ok {
				t.Error("the expired permit is still stored after a grant")
			}
			acquire("short", 2, time.Minute, false)
			release("short", q.LockID, false)
		})

		t.Run("stale m", func(t *testing.T) {
			s1 := acquire("stale", 2, 100*time.Millisecond, true)
			acquire("stale", 2, time.Minute, true)
			release("stale", s1.LockID, true) // m stays s1's expiry: a lower bound
			if s := summary("stale"); s["m"] != s1.ExpiresAtMs || s["c"] != 1 {
				t.Fatalf("summary %v; want m %d, c 1", s, s1.ExpiresAtMs)
			}
			acquire("stale", 2, time.Minute, true) // m still live: one field read
			acquire("stale", 2, time.Minute, false)
			u := acquire("lapse", 1, 100*time.Millisecond, true)
			acquire("lapse", 1, time.Minute, false)
			time.Sleep(100*time.Millisecond + driver.Tolerance + 50*time.Millisecond)
			acquire("stale", 2, time.Minute, false) // m has passed: the hash is read, both live
			if s := summary("stale"); s["m"] != s1.ExpiresAtMs {
				t.Errorf("a refused acquisition wrote the summary: %v", s)
			}
			acquire("lapse", 1, time.Minute, true) // u expired
			release("lapse", u.LockID, false)
		})

		t.Run("no summary", func(t *testing.T) {
			// Two live permits and one dead one, written as the previous
			// release of the driver wrote them: no c, m, l or x.
			now := serverNowMs(t, c)
			fl := int64(driver.FenceFloor(now * 1000))
			v := func(exp, fence, limit int64) string {
				return strconv.FormatInt(exp, 10) + "|" + strconv.FormatInt(fence, 10) + "|" + strconv.FormatInt(limit, 10) + "|" + strconv.FormatInt(now, 10)
			}
			dead, live1, live2 := driver.NewLockID(), driver.NewLockID(), driver.NewLockID()
			if err := c.Do(ctx, c.B().Hset().Key(sem("old")).FieldValue().FieldValue("f", strconv.FormatInt(fl+3, 10)).
				FieldValue(dead, v(now-5000, fl+1, 3)).FieldValue(live1, v(now+60000, fl+2, 3)).FieldValue(live2, v(now+60000, fl+3, 4)).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			if err := c.Do(ctx, c.B().Pexpire().Key(sem("old")).Milliseconds(120000).Build()).Error(); err != nil {
				t.Fatal(err)
			}
			r := acquire("old", 4, time.Minute, true) // 2 live < min(4, 3, 4)
			if r.Fence <= driver.Fence(fl+3) {
				t.Errorf("fence %v; want > %d", r.Fence, fl+3)
			}
			h := readSem(t, c, sem("old"))
			want := map[string]int64{"c": 3, "m": now + 60000, "l": 3, "x": 2}
			if diff := cmp.Diff(want, h.summary); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
			if _, ok := h.permits[dead]; ok {
				t.Error("the dead permit was not pruned")
			}
			acquire("old", 4, time.Minute, false)
			for _, id := range []string{live1, live2, r.LockID} {
				release("old", id, true)
			}
			if h := readSem(t, c, sem("old")); len(h.summary) != 0 || len(h.permits) != 0 {
				t.Errorf("hash after the last release %+v; want only f", h)
			}
		})
	})
}

// TestPermitSummaryRandom runs random acquisitions (limits 1–4, TTLs from
// 1 ms to a minute; a third of those up to 40 ms are never released),
// releases and extensions on one key, checks after each
// that the summary is true of the stored permits, and checks each
// acquisition's outcome against the contract's rule applied to the hash
// read just before it (skipped when a permit's liveness could have changed
// in between).
func TestPermitSummaryRandom(t *testing.T) {
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		c := d.Client()
		sem := mustNames(t, d, "rand").sem()
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		ttls := []time.Duration{time.Millisecond, 40 * time.Millisecond, 300 * time.Millisecond, time.Minute}
		var held []string
		var grants, refusals, checked int
		deadline := time.Now().Add(4 * time.Second)
		for step := 0; time.Now().Before(deadline) && step < 3000; step++ {
			switch op := rng.IntN(10); {
			case op < 5 || len(held) == 0:
				limit, ttl := 1+rng.IntN(4), ttls[rng.IntN(len(ttls))]
				before := readSem(t, c, sem)
				t0 := serverNowMs(t, c)
				r, err := d.AcquirePermit(ctx, "rand", limit, ttl)
				if err != nil {
					t.Fatalf("step %d: AcquirePermit: %v", step, err)
				}
				t1 := serverNowMs(t, c)
				live, lim, sure := 0, int64(limit), true
				for _, p := range before.permits {
					if p.exp+driver.ToleranceMs >= t0-1 && p.exp+driver.ToleranceMs <= t1+1 {
						sure = false
					}
					if driver.IsLive(p.exp, t0) {
						live++
						lim = min(lim, p.limit)
					}
				}
				if want := int64(live) < lim; sure && r.Acquired != want {
					t.Fatalf("step %d: AcquirePermit(limit %d) = %+v; want Acquired %v (%d live, smallest limit %d; hash %+v)", step, limit, r, want, live, lim, before)
				}
				if sure {
					checked++
				}
				switch {
				case r.Acquired && ttl <= 40*time.Millisecond && rng.IntN(3) == 0:
					grants++ // abandoned: its holder "crashed"
				case r.Acquired:
					grants++
					held = append(held, r.LockID)
				default:
					refusals++
				}
			case op < 8:
				i := rng.IntN(len(held))
				if _, err := d.ReleasePermit(ctx, "rand", held[i]); err != nil {
					t.Fatalf("step %d: ReleasePermit: %v", step, err)
				}
				held = append(held[:i], held[i+1:]...)
			default:
				i := rng.IntN(len(held))
				e, err := d.ExtendPermit(ctx, "rand", held[i], ttls[rng.IntN(len(ttls))])
				if err != nil {
					t.Fatalf("step %d: ExtendPermit: %v", step, err)
				}
				if !e.OK {
					held = append(held[:i], held[i+1:]...)
				}
			}
			checkSummary(t, readSem(t, c, sem))
			if t.Failed() {
				t.Fatalf("step %d: the summary is wrong", step)
			}
			if rng.IntN(20) == 0 {
				time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
			}
		}
		t.Logf("%d grants, %d refusals, %d outcomes checked", grants, refusals, checked)
		if grants == 0 || refusals == 0 || checked < (grants+refusals)/2 {
			t.Errorf("%d grants, %d refusals, %d checked: the walk did not exercise both outcomes", grants, refusals, checked)
		}
	})
}
