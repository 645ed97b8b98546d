package driver

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type describeAllCaps struct {
	WithFencing
	WithServerTime
	WithFairHandoff
	WithCrossProcess
}

func (describeAllCaps) Name() string { return "all" }

type describeBareCaps struct{}

func (describeBareCaps) Name() string { return "bare" }

type describeFencedSharedCaps struct {
	WithFencing
	WithCrossProcess
}

func (describeFencedSharedCaps) Name() string { return "fenced-shared" }

type describeLockOnlyCaps struct {
	WithServerTime
	WithCrossProcess
}

func (describeLockOnlyCaps) Name() string { return "lock-only" }

// Compile-time checks: the capability constraints follow the embedded markers.
var (
	_ Fenced       = describeAllCaps{}
	_ ServerTime   = describeAllCaps{}
	_ FairHandoff  = describeAllCaps{}
	_ CrossProcess = describeAllCaps{}
	_ Fenced       = describeFencedSharedCaps{}
	_ ServerTime   = describeLockOnlyCaps{}
	_ Capabilities = describeBareCaps{}
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		caps Capabilities
		want Info
	}{
		{"case153/all", describeAllCaps{}, Info{Name: "all", Fencing: true, ServerTime: true, FairHandoff: true, CrossProcess: true}},
		{"case153/all_pointer", &describeAllCaps{}, Info{Name: "all", Fencing: true, ServerTime: true, FairHandoff: true, CrossProcess: true}},
		{"case153/bare", describeBareCaps{}, Info{Name: "bare"}},
		{"case153/fenced_shared", describeFencedSharedCaps{}, Info{Name: "fenced-shared", Fencing: true, CrossProcess: true}},
		{"case153/lock_only", describeLockOnlyCaps{}, Info{Name: "lock-only", ServerTime: true, CrossProcess: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Describe(tt.caps)); diff != "" {
				t.Errorf("Describe (-want +got):\n%s", diff)
			}
		})
	}
}
