package syncguard_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
)

// gcraRef is the GCRA by its definition (virtual scheduling, ITU-T I.371)
// generalised to n units: T is the emission interval, τ = Burst·T the
// tolerance; a request of n units at t conforms iff
// max(TAT, t) + n·T − τ ≤ t, and then TAT becomes max(TAT, t) + n·T.
type gcraRef struct {
	T, tau time.Duration
	tat    time.Duration // since the epoch of the test
}

func (g *gcraRef) allowN(t time.Duration, n int) syncguard.RateResult {
	tat := max(g.tat, t)
	next := tat + time.Duration(n)*g.T
	if next-g.tau > t {
		return syncguard.RateResult{RetryAfter: next - g.tau - t, ResetAfter: tat - t}
	}
	if n > 0 {
		g.tat = next
	}
	return syncguard.RateResult{Allowed: n, Remaining: int((t - (next - g.tau)) / g.T), ResetAfter: next - t}
}

// tokenBucket is golang.org/x/time/rate's model in exact integer
// arithmetic: a bucket of Burst tokens refilled at one token per T. Tokens
// are kept in units of 1/T ns to stay exact.
type tokenBucket struct {
	T      time.Duration
	burst  int
	tokens time.Duration // tokens × T
	last   time.Duration
}

func (b *tokenBucket) allowN(t time.Duration, n int) bool {
	b.tokens = min(b.tokens+(t-b.last), time.Duration(b.burst)*b.T)
	b.last = t
	if b.tokens < time.Duration(n)*b.T {
		return false
	}
	b.tokens -= time.Duration(n) * b.T
	return true
}

type rateStep struct {
	at time.Duration // since the start
	n  int
}

// TestRateLimiterMatchesGCRA feeds the same request sequences to the
// memory driver (fake clock), the GCRA definition and a token bucket:
// same decisions, and the driver's numbers equal the definition's.
func TestRateLimiterMatchesGCRA(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	burstThenSteady := []rateStep{{0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}, {50 * ms, 1}, {99 * ms, 1}, {100 * ms, 1}, {150 * ms, 1}, {200 * ms, 1}, {1000 * ms, 1}, {1000 * ms, 1}}
	bigCosts := []rateStep{{0, 3}, {0, 3}, {10 * ms, 0}, {200 * ms, 2}, {250 * ms, 2}, {450 * ms, 5}, {900 * ms, 5}, {900 * ms, 6}, {5000 * ms, 0}}
	var jittery []rateStep
	for i := range 60 {
		jittery = append(jittery, rateStep{time.Duration(i*i%97) * 7 * ms / 3, 1 + i%3})
	}
	tests := []struct {
		name  string
		limit syncguard.RateLimit
		steps []rateStep
	}{
		{"10/s burst 3", syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 3}, burstThenSteady},
		{"10/s burst 1", syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 1}, burstThenSteady},
		{"10/s burst 5 costs", syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 5}, bigCosts},
		{"3/s burst 4 jitter", syncguard.RateLimit{Limit: 3, Period: time.Second, Burst: 4}, sortSteps(jittery)},
		{"100/min burst 10 jitter", syncguard.RateLimit{Limit: 100, Period: time.Minute, Burst: 10}, sortSteps(jittery)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Unix(1_700_000_000, 0)
			now := start
			lim, err := syncguard.NewRateLimiter(memory.New(memory.WithClock(func() time.Time { return now })), tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			T := tc.limit.Period / time.Duration(tc.limit.Limit)
			ref := &gcraRef{T: T, tau: time.Duration(tc.limit.Burst) * T}
			bucket := &tokenBucket{T: T, burst: tc.limit.Burst, tokens: time.Duration(tc.limit.Burst) * T}
			for i, s := range tc.steps {
				now = start.Add(s.at)
				got, err := lim.AllowN(context.Background(), "k", s.n)
				if s.n > tc.limit.Burst {
					// Never allowed: refused as invalid, changing nothing
					// (as the definition's refusal changes nothing).
					if !errors.Is(err, syncguard.ErrInvalidArgument) {
						t.Fatalf("step %d (n=%d > burst %d) = %+v, %v; want InvalidArgument", i, s.n, tc.limit.Burst, got, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := ref.allowN(s.at, s.n)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("step %d (%v, n=%d) (-definition +driver):\n%s", i, s.at, s.n, diff)
				}
				if s.n > 0 {
					if tb := bucket.allowN(s.at, s.n); tb != (got.Allowed > 0) {
						t.Errorf("step %d (%v, n=%d): token bucket allows %v, driver %v", i, s.at, s.n, tb, got.Allowed > 0)
					}
				}
			}
		})
	}
}

func sortSteps(s []rateStep) []rateStep {
	out := append([]rateStep(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].at < out[j-1].at; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestRateLimiterDrivers runs one burst sequence on every driver: with one
// event per hour, time does not move the numbers during the test.
func TestRateLimiterDrivers(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 3}, syncguard.WithPrefix("rl:"))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			type outcome struct {
				Allowed, Remaining int
				RetryH             int // RetryAfter rounded to hours
			}
			var got []outcome
			for _, n := range []int{1, 1, 0, 1, 1, 2} {
				res, err := lim.AllowN(ctx, "user:1", n)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, outcome{res.Allowed, res.Remaining, int(res.RetryAfter.Round(time.Hour) / time.Hour)})
			}
			want := []outcome{{1, 2, 0}, {1, 1, 0}, {0, 1, 0}, {1, 0, 0}, {0, 0, 1}, {0, 0, 2}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if ok, err := lim.Allow(ctx, "user:2"); !ok || err != nil {
				t.Errorf("other key: Allow = %v, %v", ok, err)
			}
			if err := lim.Reset(ctx, "user:1"); err != nil {
				t.Fatal(err)
			}
			if res, err := lim.AllowN(ctx, "user:1", 3); res.Allowed != 3 || err != nil {
				t.Errorf("after Reset: AllowN(3) = %+v, %v", res, err)
			}
		})
	}
}

// TestRateLimiterWait runs Wait on the memory driver in a synctest bubble,
// so the waits take fake time.
func TestRateLimiterWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		lim, err := syncguard.NewRateLimiter(memory.New(), syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		start := time.Now()
		var at []time.Duration
		for range 5 {
			if err := lim.Wait(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			at = append(at, time.Since(start))
		}
		want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
		if diff := cmp.Diff(want, at); diff != "" {
			t.Errorf("Wait times (-want +got):\n%s", diff)
		}

		// A deadline before the next slot fails at once with RateLimited.
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		before := time.Now()
		if err := lim.Wait(dctx, "k"); !errors.Is(err, syncguard.ErrRateLimited) {
			t.Errorf("Wait past deadline = %v, want RateLimited", err)
		}
		if time.Since(before) != 0 {
			t.Error("Wait past deadline slept")
		}
		// Cancellation while waiting.
		cctx, ccancel := context.WithCancel(ctx)
		time.AfterFunc(10*time.Millisecond, ccancel)
		if err := lim.WaitN(cctx, "k", 2); !errors.Is(err, syncguard.ErrAborted) {
			t.Errorf("Wait cancelled = %v, want Aborted", err)
		}
		// n above the burst can never be granted.
		if err := lim.WaitN(ctx, "k", 3); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("WaitN(3) with burst 2 = %v", err)
		}
	})
}

// TestRateLimiterWaitDrivers: Wait spaces events by the emission interval
// on a server clock too.
func TestRateLimiterWaitDrivers(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 50, Period: time.Second, Burst: 1})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for range 4 {
				if err := lim.Wait(context.Background(), "w"); err != nil {
					t.Fatal(err)
				}
			}
			if el := time.Since(start); el < 55*time.Millisecond || el > 2*time.Second {
				t.Errorf("4 waits at 50/s burst 1 took %v, want ≈60ms", el)
			}
		})
	}
}

func TestRateLimiterInvalid(t *testing.T) {
	t.Parallel()
	d := memory.New()
	for _, lim := range []syncguard.RateLimit{
		{Limit: 0, Period: time.Second, Burst: 1},
		{Limit: 1, Period: 0, Burst: 1},
		{Limit: 1, Period: time.Second, Burst: 0},
		{Limit: 1_000_000_000, Period: time.Second, Burst: 1},
	} {
		if _, err := syncguard.NewRateLimiter(d, lim); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("NewRateLimiter(%+v) = %v", lim, err)
		}
	}
	if _, err := syncguard.NewRateLimiter(nil, syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1}); !errors.Is(err, syncguard.ErrInvalidArgument) {
		t.Errorf("nil store: %v", err)
	}
	lim, _ := syncguard.NewRateLimiter(d, syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1})
	var nilCtx context.Context
	for name, call := range map[string]func() error{
		"empty key":  func() error { _, err := lim.Allow(context.Background(), ""); return err },
		"negative n": func() error { _, err := lim.AllowN(context.Background(), "k", -1); return err },
		"nil ctx":    func() error { _, err := lim.Allow(nilCtx, "k"); return err },
		"reset nil":  func() error { return lim.Reset(nilCtx, "k") },
		"wait 0":     func() error { return lim.WaitN(context.Background(), "k", 0) },
		"n > burst":  func() error { _, err := lim.AllowN(context.Background(), "k", 2); return err },
	} {
		if err := call(); !errors.Is(err, syncguard.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// TestRateLimiterAllowNAboveBurst: a request for more than the burst is
// refused with InvalidArgument on every driver (it could never be allowed)
// and changes nothing; n = burst is still allowed.
func TestRateLimiterAllowNAboveBurst(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 10, Period: time.Second, Burst: 5})
			if err != nil {
				t.Fatal(err)
			}
			key := "rl:above-burst:" + d.Name + ":" + strconv.FormatInt(time.Now().UnixNano(), 36)
			res, err := lim.AllowN(ctx, key, 6)
			if !errors.Is(err, syncguard.ErrInvalidArgument) || !strings.Contains(err.Error(), "exceeds the burst (5)") {
				t.Fatalf("AllowN(6) with burst 5 = %+v, %v; want InvalidArgument naming the burst", res, err)
			}
			if diff := cmp.Diff(syncguard.RateResult{}, res); diff != "" {
				t.Errorf("result with the error (-want +got):\n%s", diff)
			}
			res, err = lim.AllowN(ctx, key, 5)
			if err != nil || res.Allowed != 5 {
				t.Errorf("AllowN(5) with burst 5 after the refusal = %+v, %v; want all 5 allowed", res, err)
			}
		})
	}
}

// BenchmarkRateLimiterAllow measures one Allow (one atomic GCRA step on
// the backend) on a key that is never limited.
func BenchmarkRateLimiterAllow(b *testing.B) {
	for _, d := range drivertest.Drivers(b) {
		b.Run(d.Name, func(b *testing.B) {
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1_000_000, Period: time.Second, Burst: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := lim.Allow(ctx, "bench:rate"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRateLimiterAllowParallel: many goroutines, distinct keys.
func BenchmarkRateLimiterAllowParallel(b *testing.B) {
	for _, d := range drivertest.Drivers(b) {
		b.Run(d.Name, func(b *testing.B) {
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1_000_000, Period: time.Second, Burst: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := "bench:rate:" + strconv.FormatInt(n.Add(1), 10)
				for pb.Next() {
					if _, err := lim.Allow(ctx, key); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
