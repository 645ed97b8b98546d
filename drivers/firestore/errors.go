package firestore

import (
	"context"
	"errors"

	"github.com/syncguard/syncguard"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// mapError turns an error from the Firestore client into a
// *syncguard.LockError, by type: the context's error first (Canceled →
// Aborted, DeadlineExceeded → NetworkTimeout, wrapping it), then the gRPC
// status code (contract §7):
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

func classify(ctx context.Context, err error) *syncguard.LockError {
	var le *syncguard.LockError
	if errors.As(err, &le) {
		return &syncguard.LockError{Code: le.Code, Message: le.Message, Cause: err}
	}
	if errors.Is(err, errDuplicateLive) {
		return &syncguard.LockError{Code: syncguard.Internal, Message: err.Error(), Cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return syncguard.ContextError(err)
	}
	if ctx != nil && ctx.Err() != nil {
		return syncguard.ContextError(ctx.Err())
	}
	code := syncguard.Internal
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		code = syncguard.AuthFailed
	case codes.DeadlineExceeded:
		code = syncguard.NetworkTimeout
	case codes.Unavailable, codes.Internal, codes.Aborted:
		code = syncguard.ServiceUnavailable
	case codes.InvalidArgument, codes.FailedPrecondition:
		code = syncguard.InvalidArgument
	case codes.ResourceExhausted:
		code = syncguard.RateLimited
	case codes.Canceled:
		code = syncguard.Aborted
	}
	return &syncguard.LockError{Code: code, Message: "firestore: " + err.Error(), Cause: err}
}

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }
