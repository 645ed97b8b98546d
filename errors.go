package syncguard

import (
	"errors"

	"github.com/syncguard/syncguard/driver"
)

// ErrLocked reports contention: another owner holds the key.
// [Guard.TryAcquire] returns it, and the AcquisitionTimeout errors of
// [Guard.Acquire] and [Guard.Do] match it.
var ErrLocked = errors.New("syncguard: lock is held by another owner")

// ErrLockLost reports a lease lost before its holder released it (expired,
// taken over, or not extendable): work done under it may have overlapped with
// another holder.
var ErrLockLost = errors.New("syncguard: lock was lost before release")

func invalidArg(msg string) *LockError {
	return &LockError{Code: driver.InvalidArgument, Message: msg}
}
