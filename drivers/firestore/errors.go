package firestore

import (
	"context"
	"errors"

	"github.com/syncguard/syncguard/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mapError turns an error from the Firestore client into a
// *driver.LockError, by type: the context's error first (Canceled →
// Aborted, DeadlineExceeded → NetworkTimeout, wrapping it), then the gRPC
// status code (docs/contract.md#errors):
//
//	PermissionDenied, Unauthenticated     AuthFailed
//	DeadlineExceeded                      NetworkTimeout
//	Unavailable, Internal, Aborted        ServiceUnavailable (Aborted: the
//	                                      transaction lost every attempt)
//	InvalidArgument, FailedPrecondition   InvalidArgument (e.g. a missing index)
//	ResourceExhausted                     RateLimited
//	Canceled                              Aborted
//	anything else                         Internal
func mapError(ctx context.Context, err error, key, lockID string) error {
	var le *driver.LockError
	if err != nil && !errors.As(err, &le) && errors.Is(err, errDuplicateLive) {
		return &driver.LockError{Code: driver.Internal, Message: err.Error(), Cause: err, Key: key, LockID: lockID}
	}
	return driver.MapError(ctx, err, key, lockID, classify)
}

// classify maps what [driver.Classify] leaves to the driver: the gRPC
// status code.
func classify(err error) *driver.LockError {
	code := driver.Internal
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		code = driver.AuthFailed
	case codes.DeadlineExceeded:
		code = driver.NetworkTimeout
	case codes.Unavailable, codes.Internal, codes.Aborted:
		code = driver.ServiceUnavailable
	case codes.InvalidArgument, codes.FailedPrecondition:
		code = driver.InvalidArgument
	case codes.ResourceExhausted:
		code = driver.RateLimited
	case codes.Canceled:
		code = driver.Aborted
	}
	return &driver.LockError{Code: code, Message: "firestore: " + err.Error(), Cause: err}
}

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }
