package redis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/conformance"
	"github.com/syncguard/syncguard/driver"
)

var (
	_ conformance.Harness[Capabilities]             = (*harness)(nil)
	_ conformance.CleanupHarness[Capabilities]      = (*harness)(nil)
	_ conformance.RawLockWriter                     = (*harness)(nil)
	_ conformance.FenceSetter                       = (*harness)(nil)
	_ conformance.StorageInspector                  = (*harness)(nil)
	_ conformance.LockIDMinter                      = (*harness)(nil)
	_ conformance.LatencyInjector[Capabilities]     = (*harness)(nil)
	_ conformance.DriverOpener[Capabilities]        = (*harness)(nil)
	_ conformance.UnheardDriverOpener[Capabilities] = (*harness)(nil)
)

var confOptions = conformance.Options{
	// Case 011's barrier already proves the three locks are held at once;
	// the wall-time budget only guards against serialisation, and the
	// default 500 ms fails on a loaded 2-core CI machine.
	Timing: conformance.Timing{ParallelBudget: 1500 * time.Millisecond},
}

// TestConformanceSingle runs the shared suite against the single node.
func TestConformanceSingle(t *testing.T) {
	c := singleClient(t)
	conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[Capabilities], error) {
		h := newHarness(t, c, "single")
		h.opt = rueidis.ClientOption{InitAddress: []string{singleAddr()}, DisableCache: true}
		return h, nil
	}, confOptions)
}

// TestConformanceCluster runs the shared suite against the local 3-master,
// 3-replica cluster. (The failover test has a cluster of its own, which it
// leaves with a killed and restarted node.)
func TestConformanceCluster(t *testing.T) {
	c := clusterClient(t)
	conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[Capabilities], error) {
		h := newHarness(t, c, "cluster")
		h.opt = rueidis.ClientOption{InitAddress: clusterAddrs(), DisableCache: true, ShuffleInit: true}
		return h, nil
	}, confOptions)
}

// TestConformanceLockOnly runs the shared suite against the lock-only mode
// on the single node: the cases that need fences, records, a lock-ID index
// or hand-off skip by its capabilities; every other case must pass.
func TestConformanceLockOnly(t *testing.T) {
	c := singleClient(t)
	conformance.RunDriver(t, func(t *testing.T) driver.Driver[LockOnlyCapabilities] {
		d, err := NewLockOnly(c, WithKeyPrefix(testPrefix("lockonly")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		return d
	}, confOptions)
}
