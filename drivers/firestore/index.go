package firestore

import (
	"context"

	"github.com/syncguard/syncguard/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CheckIndex verifies that the lockId query Release, Extend and LookupByID
// depend on can run: Firestore needs a single-field index on the lock
// collection's lockId field (automatic unless single-field indexing was
// exempted for it). Call it at startup; a missing index is reported as
// InvalidArgument with a message naming the index and how to create it
// (see docs/firestore.md).
func (d *Driver) CheckIndex(ctx context.Context) error {
	if err := driver.CheckContext(ctx); err != nil {
		return err
	}
	_, err := d.locks.Where("lockId", "==", "index-probe").Limit(1).Documents(ctx).GetAll()
	if err == nil {
		return nil
	}
	if status.Code(err) == codes.FailedPrecondition {
		return &driver.LockError{
			Code: driver.InvalidArgument,
			Message: "firestore: the single-field index on " + d.lockName + ".lockId is missing; create it with " +
				"`gcloud firestore indexes fields update lockId --collection-group=" + d.lockName + " --index=order=ASCENDING` " +
				"(see docs/firestore.md)",
			Cause: err,
		}
	}
	return mapError(ctx, err, "", "")
}
