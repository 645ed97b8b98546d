package firestore

import (
	"context"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
	"google.golang.org/api/iterator"
)

// sweepPage is how many documents one query of Sweep reads.
const sweepPage = 500

// Sweep deletes the fence counters that the fence floor has passed by
// [driver.FenceMarginMs] — the key's next fence is the floor, which is
// greater — and the permit documents whose expireAt has passed (every
// permit more than [driver.CleanupGuardMs] past its expiry and the permit
// counter past [driver.FenceKeepMs]), and returns how many documents it
// deleted. A document written after Sweep read it is left alone (each
// delete carries the read's update time as a precondition). So storage
// follows the live locks and permits: after N distinct keys are locked
// and released (a release deletes the lock document), a sweep more than
// the margin later returns the fence collection to its baseline, and the
// permit collection likewise. Run it from a cron job or a background
// goroutine, or instead enable a Firestore TTL policy on the expireAt
// field of both collections, which holds the same moment.
func (d *Driver) Sweep(ctx context.Context) (deleted int64, err error) {
	if err := driver.CheckContext(ctx); err != nil {
		return 0, err
	}
	deleted, err = d.sweep(ctx, func() (firestore.Query, bool) {
		limit := int64(driver.FenceFloor(d.now().UnixMicro())) - driver.FenceMarginMs*driver.FencePerMs
		// Fences are 15 zero-padded digits: string order is numeric order.
		return d.fences.Where("fence", "<", driver.Fence(limit).String()), limit > 0
	})
	if err != nil {
		return deleted, err
	}
	n, err := d.sweep(ctx, func() (firestore.Query, bool) {
		return d.permits.Where("expireAt", "<", d.now()), true
	})
	return deleted + n, err
}

// sweep deletes, page by page, the documents that query (made anew for
// each page; ok false: nothing to sweep) matches, each unless it changed
// since it was read.
func (d *Driver) sweep(ctx context.Context, query func() (q firestore.Query, ok bool)) (deleted int64, err error) {
	for {
		q, ok := query()
		if !ok {
			return deleted, nil
		}
		snaps, err := q.Limit(sweepPage).Documents(ctx).GetAll()
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
