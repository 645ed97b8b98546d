package postgres

import (
	"context"

	"github.com/syncguard/syncguard/driver"
)

// sweepBatch is the most rows of each kind one sweep statement deletes.
const sweepBatch = 5000

// Sweep deletes lock rows and permits expired by more than
// [driver.CleanupGuardMs], expired fenced records, spent rate state
// (theoretical arrival time in the past), hand-off waiters that stopped
// renewing their place and fence counters (of locks and of permits) that
// the fence floor has passed by [driver.FenceMarginMs] (the key's next
// fence is the floor, which is greater), and returns how many rows it
// deleted. So storage follows the live locks and permits: after N distinct
// keys are locked (or given permits) and released, a sweep more than the
// margin later returns the tables to their baseline. Every deletion
// re-checks its condition on the latest row version under the row lock, so
// a lock re-acquired meanwhile is left alone, and rows locked by a running
// operation are skipped until the next sweep. Run it from a cron job or a
// background goroutine; it is idempotent and safe to run concurrently with
// everything else (and with itself).
func (d *Driver) Sweep(ctx context.Context) (deleted int64, err error) {
	if err := driver.CheckContext(ctx); err != nil {
		return 0, err
	}
	for {
		var a, b, c, w, f int64
		if err := d.pool.QueryRow(ctx, d.q.sweep, sweepBatch).Scan(&a, &b, &c, &w, &f); err != nil {
			return deleted, mapError(ctx, err)
		}
		deleted += a + b + c + w + f
		if a < sweepBatch && b < sweepBatch && c < sweepBatch && w < sweepBatch && f < sweepBatch {
			break
		}
	}
	p, err := d.sweepPermits(ctx)
	return deleted + p, err
}
