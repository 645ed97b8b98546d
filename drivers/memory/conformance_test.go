package memory

import (
	"testing"

	"github.com/syncguard/syncguard/conformance"
	"github.com/syncguard/syncguard/driver"
)

// TestConformance runs the shared suite; the cases that need harness hooks
// into storage are covered by this package's own tests (tolerance
// boundary, fence overflow, cleanup in IsLocked, read-only lookups).
func TestConformance(t *testing.T) {
	conformance.RunDriver(t, func(*testing.T) driver.Driver[Capabilities] { return New() }, conformance.Options{})
}
