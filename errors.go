package syncguard

import (
	"errors"

	"github.com/syncguard/syncguard/driver"
)

// ErrLocked reports contention: the key is held by another owner. It is
// returned by Guard.TryAcquire and matched (errors.Is) by the
// AcquisitionTimeout error of Guard.Acquire and Guard.Do. It is never
// confused with cancellation or backend failure.
var ErrLocked = errors.New("syncguard: lock is held by another owner")

// ErrLockLost reports that a lease was lost before its holder released it:
// it expired, was taken over, or could not be extended. Work done under it
// may have overlapped with another holder.
var ErrLockLost = errors.New("syncguard: lock was lost before release")

func invalidArg(msg string) *LockError {
	return &LockError{Code: driver.InvalidArgument, Message: msg}
}
