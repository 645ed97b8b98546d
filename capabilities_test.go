package syncguard

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type describeFencedServerCaps struct {
	WithFencing
	WithServerTime
}

func (describeFencedServerCaps) Name() string { return "fenced-server" }

type describeBareCaps struct{}

func (describeBareCaps) Name() string { return "bare" }

type describeFencedClientCaps struct{ WithFencing }

func (describeFencedClientCaps) Name() string { return "fenced-client" }

type describeServerOnlyCaps struct{ WithServerTime }

func (describeServerOnlyCaps) Name() string { return "server-only" }

// Compile-time checks: the capability constraints follow the embedded markers.
var (
	_ FencedCapabilities     = describeFencedServerCaps{}
	_ ServerTimeCapabilities = describeFencedServerCaps{}
	_ FencedCapabilities     = describeFencedClientCaps{}
	_ ServerTimeCapabilities = describeServerOnlyCaps{}
	_ Capabilities           = describeBareCaps{}
)

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		caps Capabilities
		want CapabilityInfo
	}{
		{"case153/fenced_server", describeFencedServerCaps{}, CapabilityInfo{Name: "fenced-server", SupportsFencing: true, TimeAuthority: TimeAuthorityServer}},
		{"case153/fenced_server_pointer", &describeFencedServerCaps{}, CapabilityInfo{Name: "fenced-server", SupportsFencing: true, TimeAuthority: TimeAuthorityServer}},
		{"case153/bare", describeBareCaps{}, CapabilityInfo{Name: "bare", SupportsFencing: false, TimeAuthority: TimeAuthorityClient}},
		{"case153/fenced_client", describeFencedClientCaps{}, CapabilityInfo{Name: "fenced-client", SupportsFencing: true, TimeAuthority: TimeAuthorityClient}},
		{"case153/server_only", describeServerOnlyCaps{}, CapabilityInfo{Name: "server-only", SupportsFencing: false, TimeAuthority: TimeAuthorityServer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Describe(tt.caps)); diff != "" {
				t.Errorf("Describe (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("case153/authority_strings", func(t *testing.T) {
		t.Parallel()
		if TimeAuthorityServer != "server" || TimeAuthorityClient != "client" {
			t.Errorf("authorities = %q, %q", TimeAuthorityServer, TimeAuthorityClient)
		}
	})
}
