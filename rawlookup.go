package syncguard

import "context"

// Placeholders that [GetByKeyRaw] and [GetByIDRaw] put in a raw field the
// backend cannot supply (text shared with upstream SyncGuard).
const (
	RawLockIDUnavailable = "[backend does not provide raw lockId]"
	RawKeyUnavailable    = "[backend does not provide raw key]"
)

// GetByKey returns the sanitized information on the live lock of key, or nil
// if there is none. It is b.LookupByKey(ctx, key), with ctx and key passed
// through unchanged.
func GetByKey(ctx context.Context, b Backend, key string) (*LockInfo, error) {
	return b.LookupByKey(ctx, key)
}

// GetByID returns the sanitized information on the live lock with lockID, or
// nil if there is none. It is b.LookupByID(ctx, lockID), with ctx and lockID
// passed through unchanged.
func GetByID(ctx context.Context, b Backend, lockID string) (*LockInfo, error) {
	return b.LookupByID(ctx, lockID)
}

// GetByKeyRaw is [GetByKey] plus the raw normalised key and lock ID. It uses
// the backend's [RawLookup] when it has one ([AsRawLookup]); otherwise it
// falls back to LookupByKey, takes the key from the argument (normalised)
// and sets LockID to [RawLockIDUnavailable]. It returns nil, nil when no
// live lock holds key.
//
// The lock ID lets its reader release or extend the lock: expose the result
// only where that is safe.
func GetByKeyRaw(ctx context.Context, b Backend, key string) (*RawLockInfo, error) {
	if r, ok := AsRawLookup(b); ok {
		return r.LookupRawByKey(ctx, key)
	}
	info, err := b.LookupByKey(ctx, key)
	if err != nil || info == nil {
		return nil, err
	}
	nk, err := NormalizeKey(key)
	if err != nil {
		return nil, err
	}
	return &RawLockInfo{LockInfo: *info, Key: nk, LockID: RawLockIDUnavailable}, nil
}

// GetByIDRaw is [GetByID] plus the raw normalised key and lock ID. It uses
// the backend's [RawLookup] when it has one ([AsRawLookup]); otherwise it
// falls back to LookupByID, takes the lock ID from the argument and sets
// Key to [RawKeyUnavailable]. It returns nil, nil when no live lock has
// lockID.
func GetByIDRaw(ctx context.Context, b Backend, lockID string) (*RawLockInfo, error) {
	if r, ok := AsRawLookup(b); ok {
		return r.LookupRawByID(ctx, lockID)
	}
	info, err := b.LookupByID(ctx, lockID)
	if err != nil || info == nil {
		return nil, err
	}
	return &RawLockInfo{LockInfo: *info, Key: RawKeyUnavailable, LockID: lockID}, nil
}

// Owns reports whether lockID identifies a live lock (LookupByID ≠ nil). It
// is diagnostic only: the answer may be stale when it arrives, so never gate
// Release or Extend on it — they check ownership atomically themselves.
func Owns(ctx context.Context, b Backend, lockID string) (bool, error) {
	info, err := b.LookupByID(ctx, lockID)
	if err != nil {
		return false, err
	}
	return info != nil, nil
}
