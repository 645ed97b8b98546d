package conformance

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// GCRA rate (docs/contract.md#rate-gcra): G01–G08.
//
// Drivers compute GCRA with their own time authority (the server's for Redis
// and PostgreSQL), so the cases compare against refGCRA with the time that
// passed on the test's clock as an upper bound on the time that passed on
// the authority's, and with rateTol for rounding (Redis and PostgreSQL may
// work in milliseconds or microseconds). Exact comparisons are made only
// while that elapsed time is too small to change the decision.

// rateTol absorbs the rounding of the authority's clock.
const rateTol = 10 * time.Millisecond

// refGCRA is the reference GCRA of go-redis/redis_rate: emission interval
// Period/Limit, burst offset emission interval × Burst. Times are offsets
// from an arbitrary origin.
type refGCRA struct {
	lim syncguard.RateLimit
	tat time.Duration
}

func (g *refGCRA) ei() time.Duration { return g.lim.Period / time.Duration(g.lim.Limit) }

// allowN is one decision at time now.
func (g *refGCRA) allowN(now time.Duration, n int) syncguard.RateResult {
	ei := g.ei()
	tat := max(g.tat, now)
	newTat := tat + ei*time.Duration(n)
	diff := now - (newTat - ei*time.Duration(g.lim.Burst))
	if diff < 0 {
		return syncguard.RateResult{RetryAfter: -diff, ResetAfter: tat - now}
	}
	if n > 0 {
		g.tat = newTat
	}
	return syncguard.RateResult{Allowed: n, Remaining: int(diff / ei), ResetAfter: newTat - now}
}

// rate10 is the limit of most G cases: 10 per second, burst 5 (emission
// interval 100ms), stretched in proportion to Timing.Short for slower
// backends (Firestore: 10 per 2 s), so that a few requests fit in one
// emission interval.
func (c *tc[C]) rate10() syncguard.RateLimit {
	period := time.Second * time.Duration(c.tm.Short) / time.Duration(DefaultShort)
	return syncguard.RateLimit{Limit: 10, Period: max(period, time.Second), Burst: 5}
}

func (c *tc[C]) allowN(key string, lim syncguard.RateLimit, n int) syncguard.RateResult {
	c.Helper()
	r, err := c.r.AllowN(c.ctx, key, lim, n)
	if err != nil {
		c.Fatalf("AllowN(%q, %+v, %d): unexpected error: %v", key, lim, n, err)
	}
	return r
}

// within reports whether d is in [lo − rateTol, hi + rateTol].
func within(d, lo, hi time.Duration) bool { return d >= lo-rateTol && d <= hi+rateTol }

// exhaust calls AllowN(1) until it is denied (at most 3×Burst calls) and
// returns the denial.
func (c *tc[C]) exhaust(key string, lim syncguard.RateLimit) syncguard.RateResult {
	c.Helper()
	for range 3 * lim.Burst {
		if r := c.allowN(key, lim, 1); r.Allowed == 0 {
			return r
		}
	}
	// Requests slower than the emission interval never run out: ask for a
	// whole burst at once, which only a full refill could grant.
	if r := c.allowN(key, lim, lim.Burst); r.Allowed == 0 {
		return r
	}
	c.Fatalf("AllowN(%q) never denied within %d calls of a burst of %d", key, 3*lim.Burst, lim.Burst)
	return syncguard.RateResult{}
}

// G01: a full burst is allowed with Remaining counting down, then the next
// request is denied with RetryAfter ≈ one emission interval.
func g01[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	ref := &refGCRA{lim: rate10}
	ei := ref.ei()
	start := time.Now()
	var (
		got     []syncguard.RateResult
		elapsed []time.Duration // upper bounds of the authority's elapsed time
	)
	for range 6 {
		got = append(got, c.allowN(k, rate10, 1))
		elapsed = append(elapsed, time.Since(start))
	}
	for i := range 5 {
		want, r, e := ref.allowN(0, 1), got[i], elapsed[i]
		// Time passing can only raise Remaining (up to Burst − 1).
		hi := min(rate10.Burst-1, want.Remaining+int(e/ei))
		if r.Allowed != 1 || r.RetryAfter != 0 || r.Remaining < want.Remaining || r.Remaining > hi {
			c.Errorf("request %d = %+v; want Allowed 1, RetryAfter 0, Remaining %d (up to %d after %v)", i+1, r, want.Remaining, hi, e)
		}
		if r.ResetAfter <= 0 || r.ResetAfter > want.ResetAfter+rateTol {
			c.Errorf("request %d: ResetAfter %v; want in (0, %v]", i+1, r.ResetAfter, want.ResetAfter)
		}
	}
	denial, e := got[5], elapsed[5]
	if e < ei-rateTol {
		want := ref.allowN(0, 1)
		if denial.Allowed != 0 || denial.Remaining != 0 ||
			!within(denial.RetryAfter, want.RetryAfter-e, want.RetryAfter) ||
			!within(denial.ResetAfter, want.ResetAfter-e, want.ResetAfter) {
			c.Errorf("request 6 = %+v; want denied with RetryAfter ≈ %v and ResetAfter ≈ %v (minus up to %v elapsed, ±%v)",
				denial, want.RetryAfter, want.ResetAfter, e, rateTol)
		}
		return
	}
	c.Logf("six requests took %v, longer than the emission interval %v: checking the first denial only", e, ei)
	// A denial of one request waits at most one interval; the fallback of
	// exhaust (a whole burst at once, when requests are slower than the
	// interval) waits at most a full refill.
	maxRetry := ei
	if denial.Allowed != 0 {
		denial = c.exhaust(k, rate10)
		maxRetry = ei * time.Duration(rate10.Burst)
	}
	if denial.RetryAfter <= 0 || denial.RetryAfter > maxRetry+rateTol || denial.ResetAfter <= 0 || denial.ResetAfter > ei*time.Duration(rate10.Burst)+rateTol {
		c.Errorf("denial = %+v; want RetryAfter in (0, %v] and ResetAfter in (0, %v]", denial, maxRetry, ei*time.Duration(rate10.Burst))
	}
}

// G02: n = 0 inspects without consuming.
func g02[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	for i := range 2 {
		if r := c.allowN(k, rate10, 0); r.Allowed != 0 || r.Remaining != rate10.Burst || r.RetryAfter != 0 {
			c.Errorf("inspection %d of a fresh key = %+v; want Allowed 0, Remaining %d, RetryAfter 0", i+1, r, rate10.Burst)
		}
	}
	start := time.Now()
	if r := c.allowN(k, rate10, 1); r.Allowed != 1 || r.Remaining != rate10.Burst-1 {
		c.Errorf("first request after inspections = %+v; want Allowed 1, Remaining %d (nothing consumed)", r, rate10.Burst-1)
	}
	r := c.allowN(k, rate10, 0)
	e := time.Since(start)
	hi := min(rate10.Burst, rate10.Burst-1+int(e/(rate10.Period/time.Duration(rate10.Limit))))
	if r.Allowed != 0 || r.Remaining < rate10.Burst-1 || r.Remaining > hi {
		c.Errorf("inspection after one request = %+v; want Allowed 0, Remaining %d (up to %d after %v)", r, rate10.Burst-1, hi, e)
	}
	for i := range rate10.Burst - 1 {
		if r := c.allowN(k, rate10, 1); r.Allowed != 1 {
			c.Errorf("request %d of the burst = %+v; want allowed (inspections consume nothing)", i+2, r)
		}
	}
}

// G03: after sleeping RetryAfter, one more request is allowed.
func g03[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	denial := c.exhaust(k, rate10)
	if denial.RetryAfter <= 0 {
		c.Fatalf("denial = %+v; want RetryAfter > 0", denial)
	}
	c.sleep(denial.RetryAfter + rateTol)
	if r := c.allowN(k, rate10, 1); r.Allowed != 1 {
		c.Errorf("request after sleeping RetryAfter (%v) = %+v; want allowed", denial.RetryAfter, r)
	}
}

// G04: ResetRate restores the full burst.
func g04[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	c.exhaust(k, rate10)
	if err := c.r.ResetRate(c.ctx, k); err != nil {
		c.Fatalf("ResetRate: %v", err)
	}
	if r := c.allowN(k, rate10, 1); r.Allowed != 1 || r.Remaining != rate10.Burst-1 {
		c.Errorf("first request after ResetRate = %+v; want Allowed 1, Remaining %d", r, rate10.Burst-1)
	}
	for i := range rate10.Burst - 1 {
		if r := c.allowN(k, rate10, 1); r.Allowed != 1 {
			c.Errorf("request %d after ResetRate = %+v; want allowed", i+2, r)
		}
	}
	if err := c.r.ResetRate(c.ctx, c.key("never-used")); err != nil {
		c.Errorf("ResetRate of a never-used key: %v; want nil", err)
	}
}

// G05: a cost above the burst is never allowed; a cost equal to it is.
func g05[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	over := rate10.Burst + 1
	if r := c.allowN(k, rate10, over); r.Allowed != 0 {
		c.Errorf("AllowN(%d) with burst %d on a fresh key = %+v; want denied", over, rate10.Burst, r)
	}
	c.sleep(200 * time.Millisecond)
	if r := c.allowN(k, rate10, over); r.Allowed != 0 {
		c.Errorf("AllowN(%d) with burst %d later = %+v; want denied", over, rate10.Burst, r)
	}
	if err := c.r.ResetRate(c.ctx, k); err != nil {
		c.Fatalf("ResetRate: %v", err)
	}
	if r := c.allowN(k, rate10, over); r.Allowed != 0 {
		c.Errorf("AllowN(%d) with burst %d after ResetRate = %+v; want denied", over, rate10.Burst, r)
	}
	if r := c.allowN(c.key("exact"), rate10, rate10.Burst); r.Allowed != rate10.Burst || r.Remaining != 0 {
		c.Errorf("AllowN(%d) = burst on a fresh key = %+v; want Allowed %d, Remaining 0", rate10.Burst, r, rate10.Burst)
	}
}

// G06: concurrent requests are decided atomically: of 40 simultaneous
// requests against a burst of 10 with a one-hour period exactly 10 pass.
func g06[C driver.Capabilities](c *tc[C]) {
	k := c.key("rate")
	lim := syncguard.RateLimit{Limit: 10, Period: time.Hour, Burst: 10}
	var allowed atomic.Int32
	gather(40, func(int) {
		r, err := c.r.AllowN(c.ctx, k, lim, 1)
		if err != nil {
			c.Errorf("AllowN: %v", err)
			return
		}
		allowed.Add(int32(r.Allowed))
	})
	if n := allowed.Load(); n != int32(lim.Burst) {
		c.Errorf("%d of 40 concurrent requests allowed; want exactly %d", n, lim.Burst)
	}
}

// G07: invalid limits, costs and keys are InvalidArgument.
func g07[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	for _, m := range []struct {
		lim syncguard.RateLimit
		n   int
	}{
		{syncguard.RateLimit{Limit: 0, Period: time.Second, Burst: 5}, 1},
		{syncguard.RateLimit{Limit: -1, Period: time.Second, Burst: 5}, 1},
		{syncguard.RateLimit{Limit: 10, Period: 0, Burst: 5}, 1},
		{syncguard.RateLimit{Limit: 10, Period: -time.Second, Burst: 5}, 1},
		{syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 0}, 1},
		{syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: -5}, 1},
		{syncguard.RateLimit{Limit: 10_000, Period: time.Millisecond, Burst: 5}, 1}, // 100ns interval
		{rate10, -1},
	} {
		_, err := c.r.AllowN(c.ctx, k, m.lim, m.n)
		c.wantCode(fmt.Sprintf("AllowN(%+v, %d)", m.lim, m.n), err, driver.InvalidArgument, "")
	}
	_, err := c.r.AllowN(c.ctx, "", rate10, 1)
	c.wantCode(`AllowN("")`, err, driver.InvalidArgument, "")
	c.wantCode(`ResetRate("")`, c.r.ResetRate(c.ctx, ""), driver.InvalidArgument, "")
	if r := c.allowN(k, rate10, 1); r.Allowed != 1 || r.Remaining != rate10.Burst-1 {
		c.Errorf("first valid request after invalid ones = %+v; want Allowed 1, Remaining %d", r, rate10.Burst-1)
	}
}

// G08: rate operations report context errors like lock operations.
func g08[C driver.Capabilities](c *tc[C]) {
	rate10 := c.rate10()
	k := c.key("rate")
	dctx, cancel := context.WithDeadline(c.ctx, time.Now().Add(-time.Second))
	defer cancel()
	for _, m := range []struct {
		ctx  context.Context
		code driver.Code
	}{{cancelledContext(c.ctx), driver.Aborted}, {dctx, driver.NetworkTimeout}} {
		_, err := c.r.AllowN(m.ctx, k, rate10, 1)
		c.wantCode("AllowN", err, m.code, "")
		c.wantCode("ResetRate", c.r.ResetRate(m.ctx, k), m.code, "")
	}
	if r := c.allowN(k, rate10, 1); r.Remaining != rate10.Burst-1 {
		c.Errorf("first request after failed ones = %+v; want Remaining %d (nothing consumed)", r, rate10.Burst-1)
	}
}
