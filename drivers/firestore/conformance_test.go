package firestore

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard/conformance"
)

var (
	_ conformance.Harness[Capabilities]         = (*harness)(nil)
	_ conformance.CleanupHarness[Capabilities]  = (*harness)(nil)
	_ conformance.RawLockWriter                 = (*harness)(nil)
	_ conformance.FenceSetter                   = (*harness)(nil)
	_ conformance.StorageInspector              = (*harness)(nil)
	_ conformance.DriverOpener[Capabilities]    = (*harness)(nil)
	_ conformance.LatencyInjector[Capabilities] = (*harness)(nil)
)

// TestConformance runs the shared suite against the emulator with
// Firestore's timing constants (docs/contract.md#running-the-conformance-suite).
func TestConformance(t *testing.T) {
	c := newClient(t)
	conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[Capabilities], error) {
		return newHarness(t, c), nil
	}, conformance.Options{
		Timing: conformance.Timing{
			Short: 2 * time.Second, Wait: 5 * time.Second, LookupWait: 4 * time.Second, ParallelBudget: 5 * time.Second,
		},
		// The emulator serialises conflicting transactions (holding one for
		// up to 2 s); a few cases at a time keep the cases' timing meaningful.
		MaxConcurrentCases: 8,
	})
}
