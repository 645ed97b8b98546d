package driver

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGCRA(t *testing.T) {
	t.Parallel()
	// 10 per second: an emission interval of 100ms; burst 3.
	lim := RateLimit{Limit: 10, Period: time.Second, Burst: 3}
	ms := int64(time.Millisecond)
	tests := []struct {
		name        string
		n           int
		tat         int64
		want        RateResult
		wantTat     int64
		wantGranted bool
	}{
		{"fresh key", 1, 0, RateResult{Allowed: 1, Remaining: 2, ResetAfter: 100 * time.Millisecond}, 100 * ms, true},
		{"whole burst", 3, 0, RateResult{Allowed: 3, Remaining: 0, ResetAfter: 300 * time.Millisecond}, 300 * ms, true},
		{"inspect", 0, 150 * ms, RateResult{Allowed: 0, Remaining: 1, ResetAfter: 150 * time.Millisecond}, 150 * ms, true},
		{"refused", 2, 250 * ms, RateResult{RetryAfter: 150 * time.Millisecond, ResetAfter: 250 * time.Millisecond}, 450 * ms, false},
		{"too large for the burst", 4, 0, RateResult{RetryAfter: 100 * time.Millisecond}, 400 * ms, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewGCRA(lim, tt.n)
			if g.Interval != 100*ms || g.BurstOffset != 300*ms || g.Increment != int64(tt.n)*100*ms {
				t.Fatalf("NewGCRA = %+v", g)
			}
			res, newTat, granted := g.Result(tt.tat, tt.n)
			if diff := cmp.Diff(tt.want, res); diff != "" {
				t.Errorf("Result (-want +got):\n%s", diff)
			}
			if newTat != tt.wantTat || granted != tt.wantGranted {
				t.Errorf("Result: newTat %v, granted %v; want %v, %v", newTat, granted, tt.wantTat, tt.wantGranted)
			}
		})
	}
}
