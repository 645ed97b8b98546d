package driver

import (
	"context"
	"errors"
)

// MapError is the frame of a driver's error mapping: nil stays nil, and
// any other err becomes Classify(ctx, err, rest) with Key and LockID set
// to key and lockID (either may be "").
func MapError(ctx context.Context, err error, key, lockID string, rest func(error) *LockError) error {
	if err == nil {
		return nil
	}
	le := Classify(ctx, err, rest)
	le.Key, le.LockID = key, lockID
	return le
}

// Classify maps a non-nil err from a backend client to a *LockError whose
// Cause is err, in the order every driver shares:
//
//   - a *LockError in err's chain keeps its code and message;
//   - a context error in err's chain, then an ended ctx (which may be
//     nil), becomes [ContextError] of that context error;
//   - anything else is rest(err), the driver's own classification by the
//     client's error types.
func Classify(ctx context.Context, err error, rest func(error) *LockError) *LockError {
	var le *LockError
	if errors.As(err, &le) {
		return &LockError{Code: le.Code, Message: le.Message, Cause: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ContextError(err)
	}
	if ctx != nil && ctx.Err() != nil {
		return ContextError(ctx.Err())
	}
	return rest(err)
}
