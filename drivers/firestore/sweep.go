package firestore

import (
	"context"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
	"google.golang.org/api/iterator"
)

// sweepPage is how many fence counters one query of Sweep reads.
const sweepPage = 500

// Sweep deletes the fence counters that the fence floor has passed by
// [driver.FenceMarginMs] — the key's next fence is the floor, which is
// greater — and returns how many it deleted. A counter written after Sweep
// read it is left alone (each delete carries the read's update time as a
// precondition). So storage follows the live locks: after N distinct keys
// are locked and released (a release deletes the lock document), a sweep
// more than the margin later returns the fence collection to its
// baseline. Run it from a cron job or a background goroutine, or instead
// enable a Firestore TTL policy on the counters' expireAt field, which
// holds the same moment.
func (d *Driver) Sweep(ctx context.Context) (deleted int64, err error) {
	if err := driver.CheckContext(ctx); err != nil {
		return 0, err
	}
	for {
		limit := int64(driver.FenceFloor(d.now().UnixMicro())) - driver.FenceMarginMs*driver.FencePerMs
		if limit <= 0 {
			return deleted, nil
		}
		// Fences are 15 zero-padded digits: string order is numeric order.
		snaps, err := d.fences.Where("fence", "<", driver.Fence(limit).String()).Limit(sweepPage).Documents(ctx).GetAll()
		if err != nil && err != iterator.Done {
			return deleted, mapError(ctx, err, "", "")
		}
		if len(snaps) == 0 {
			return deleted, nil
		}
		bw := d.client.BulkWriter(ctx)
		jobs := make([]*firestore.BulkWriterJob, 0, len(snaps))
		for _, s := range snaps {
			j, err := bw.Delete(s.Ref, firestore.LastUpdateTime(s.UpdateTime))
			if err != nil {
				bw.End()
				return deleted, mapError(ctx, err, "", "")
			}
			jobs = append(jobs, j)
		}
		bw.End()
		n := 0
		for _, j := range jobs {
			if _, err := j.Results(); err == nil {
				n++
			}
		}
		deleted += int64(n)
		if len(snaps) < sweepPage || n == 0 {
			return deleted, nil
		}
		if err := ctx.Err(); err != nil {
			return deleted, mapError(ctx, err, "", "")
		}
	}
}
