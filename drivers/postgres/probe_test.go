package postgres

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestListenerProbeSingleFlight checks which releases probe
// pg_stat_activity: one at a time while an answer is being fetched, and
// never one that would use an answer listenSeenDelay old or older.
func TestListenerProbeSingleFlight(t *testing.T) {
	type step struct {
		after  time.Duration // since the previous step
		answer *bool         // report the answer of the first release's probe now
		want   string        // "probe", "true" or "false"
	}
	yes, no := true, false
	cases := []struct {
		name  string
		steps []step
	}{
		{"no answer yet: every release probes", []step{
			{0, nil, "probe"}, {time.Millisecond, nil, "probe"},
		}},
		{"answer reused within the TTL", []step{
			{0, nil, "probe"}, {time.Millisecond, &yes, "true"}, {40 * time.Millisecond, nil, "true"},
		}},
		{"one probe in flight: stale answer reused below listenSeenDelay", []step{
			{0, nil, "probe"}, {0, &no, "false"},
			{60 * time.Millisecond, nil, "probe"},
			{10 * time.Millisecond, nil, "false"},
			{20 * time.Millisecond, nil, "false"},
		}},
		{"never an answer listenSeenDelay old", []step{
			{0, nil, "probe"}, {0, &no, "false"},
			{60 * time.Millisecond, nil, "probe"},
			{40 * time.Millisecond, nil, "probe"},
		}},
		{"a lost probe stops counting as in flight after the TTL", []step{
			{0, nil, "probe"}, {0, &yes, "true"},
			{50 * time.Millisecond, nil, "probe"},
			{49 * time.Millisecond, nil, "true"},
			{time.Millisecond, nil, "probe"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &Driver{lis: &listener{}}
				var got, want []string
				var firstProbe time.Time
				for _, s := range tc.steps {
					time.Sleep(s.after)
					if s.answer != nil {
						d.sawListener(*s.answer, firstProbe)
					}
					seen, probed := d.listenerSeen()
					switch {
					case seen == nil:
						got = append(got, "probe")
						if firstProbe.IsZero() {
							firstProbe = probed
						}
					case *seen:
						got = append(got, "true")
					default:
						got = append(got, "false")
					}
					want = append(want, s.want)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("listenerSeen answers (-want +got):\n%s", diff)
				}
			})
		})
	}
}
