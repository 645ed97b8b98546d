package postgres

import (
	"context"

	"github.com/syncguard/syncguard"
)

// sweepBatch is the most rows of each kind one sweep statement deletes.
const sweepBatch = 5000

// Sweep deletes lock rows expired by more than [syncguard.CleanupGuardMs],
// expired fenced records, spent rate state (theoretical arrival time in
// the past) and hand-off waiters that stopped renewing their place, and
// returns how many rows it deleted. Fence counters are never deleted. Every deletion re-checks its condition on the latest row version
// under the row lock, so a lock re-acquired meanwhile is left alone, and
// rows locked by a running operation are skipped until the next sweep.
// Run it from a cron job or a background goroutine; it is idempotent and
// safe to run concurrently with everything else (and with itself).
func (d *Driver) Sweep(ctx context.Context) (deleted int64, err error) {
	if err := syncguard.CheckContext(ctx); err != nil {
		return 0, err
	}
	for {
		var a, b, c, w int64
		if err := d.pool.QueryRow(ctx, d.q.sweep, sweepBatch).Scan(&a, &b, &c, &w); err != nil {
			return deleted, mapError(ctx, err)
		}
		deleted += a + b + c + w
		if a < sweepBatch && b < sweepBatch && c < sweepBatch && w < sweepBatch {
			return deleted, nil
		}
	}
}
