package syncguard

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetryPolicy(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		delay  time.Duration
		exp    bool
		jitter JitterStrategy
		random float64
		want   []time.Duration
	}{
		{"case104_fixed_none", 10 * ms, false, JitterNone, 0.9, []time.Duration{10 * ms, 10 * ms, 10 * ms}},
		{"case105_exponential_none", 5 * ms, true, JitterNone, 0.9, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms}},
		{"case106_fixed_full_025", 100 * ms, false, JitterFull, 0.25, []time.Duration{25 * ms, 25 * ms}},
		{"case106_exponential_full_025", 100 * ms, true, JitterFull, 0.25, []time.Duration{25 * ms, 50 * ms, 100 * ms}},
		{"case107_fixed_equal_05", 100 * ms, false, JitterEqual, 0.5, []time.Duration{75 * ms, 75 * ms}},
		{"case107_equal_range_low", 100 * ms, false, JitterEqual, 0, []time.Duration{50 * ms}},
		{"case107_equal_range_high", 100 * ms, false, JitterEqual, math.Nextafter(1, 0), []time.Duration{100*ms - 1}},
		{"case107_equal_odd_base", 3, false, JitterEqual, 0, []time.Duration{1}},
		{"case121_zero_delay", 0, true, JitterEqual, 0.5, []time.Duration{0, 0, 0}},
		{"full_jitter_zero_draw", 100 * ms, true, JitterFull, 0, []time.Duration{0, 0}},
		{
			"exponential_capped", 6 * time.Hour, true, JitterNone, 0,
			[]time.Duration{6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		},
		{"fixed_not_capped", 48 * time.Hour, false, JitterNone, 0, []time.Duration{48 * time.Hour}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &retryPolicy{delay: tc.delay, exp: tc.exp, jitter: tc.jitter, random: func() float64 { return tc.random }}
			var got []time.Duration
			for range tc.want {
				got = append(got, p.NextBackOff())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("delays (-want +got):\n%s", diff)
			}
			p.Reset()
			if d := p.NextBackOff(); d != tc.want[0] {
				t.Errorf("after Reset: %v, want %v", d, tc.want[0])
			}
		})
	}

	t.Run("no_overflow_after_many_attempts", func(t *testing.T) {
		p := &retryPolicy{delay: time.Millisecond, exp: true, jitter: JitterNone, random: func() float64 { return 0 }}
		for i := range 200 {
			if d := p.NextBackOff(); d <= 0 || d > maxBackoffDelay {
				t.Fatalf("attempt %d: delay %v out of range", i+1, d)
			}
		}
	})

	t.Run("jitter_stays_in_range", func(t *testing.T) {
		for _, u := range []float64{0, 0.1, 0.5, 0.999999} {
			for _, j := range []JitterStrategy{JitterEqual, JitterFull} {
				p := &retryPolicy{delay: 100 * ms, exp: true, jitter: j, random: func() float64 { return u }}
				for n := 1; n <= 5; n++ {
					base := 100 * ms << (n - 1)
					lo := time.Duration(0)
					if j == JitterEqual {
						lo = base / 2
					}
					if d := p.NextBackOff(); d < lo || d >= base {
						t.Errorf("jitter %v, U %v, attempt %d: %v not in [%v, %v)", j, u, n, d, lo, base)
					}
				}
			}
		}
	})
}
