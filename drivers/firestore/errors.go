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
	if err == nil {
		return nil
	}
	le := classify(ctx, err)
	le.Key, le.LockID = key, lockID
	return le
}

func classify(ctx context.Context, err error) *driver.LockError {
	var le *driver.LockError
	if errors.As(err, &le) {
		return &driver.LockError{Code: le.Code, Message: le.Message, Cause: err}
	}
	if errors.Is(err, errDuplicateLive) {
		return &driver.LockError{Code: driver.Internal, Message: err.Error(), Cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return driver.ContextError(err)
	}
	if ctx != nil && ctx.Err() != nil {
		return driver.ContextError(ctx.Err())
	}
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
