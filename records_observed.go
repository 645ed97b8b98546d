package syncguard

import (
	"context"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// reasonStale is the Reason of a record write refused for an older fence.
const reasonStale = "stale"

// observedRecords is the Guard's record store when an observer is
// configured: every call emits one EventRecord.
type observedRecords struct {
	o     *observed
	inner driver.RecordStore
}

func (r observedRecords) PutRecord(ctx context.Context, name string, fence Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	start := r.o.now()
	res, err := r.inner.PutRecord(ctx, name, fence, value, ttl)
	r.o.emitKey(ctx, EventRecord, name, r.o.since(start), res.Stored, reasonStale, err)
	return res, err
}

func (r observedRecords) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	start := r.o.now()
	rec, err := r.inner.GetRecord(ctx, name)
	r.o.emitKey(ctx, EventRecord, name, r.o.since(start), rec != nil, "", err)
	return rec, err
}

func (r observedRecords) DeleteRecord(ctx context.Context, name string, fence Fence) (bool, error) {
	start := r.o.now()
	ok, err := r.inner.DeleteRecord(ctx, name, fence)
	r.o.emitKey(ctx, EventRecord, name, r.o.since(start), ok, "", err)
	return ok, err
}
