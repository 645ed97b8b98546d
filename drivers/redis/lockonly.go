package redis

import (
	"context"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
)

// Compile-time checks of the lock-only driver.
var (
	_ syncguard.Driver[LockOnlyCapabilities] = (*LockOnlyDriver)(nil)
	_ syncguard.ServerTimeCapabilities       = LockOnlyCapabilities{}
)

// LockOnlyCapabilities is the capability type of the lock-only Redis
// driver ([NewLockOnly]): no fencing tokens (FenceOf, FencedWriter and
// OncePerKey do not compile with it). Expiry is judged by the Redis
// server's clock (the lock key's PX), so it declares a server time
// authority; but see [LockOnlyDriver] for what its ExpiresAtMs means.
type LockOnlyCapabilities struct {
	syncguard.WithServerTime
}

// Name returns "redis-lockonly".
func (LockOnlyCapabilities) Name() string { return "redis-lockonly" }

// LockOnlyDriver is the Redis driver's lock-only mode: a lock is one
// string key, <prefix>:lo:<key> = lockID, written with SET NX PX (ttl +
// [syncguard.Tolerance]) and deleted or extended by a compare-and-delete
// or compare-and-PEXPIRE script. There is no fence counter and no lock-ID
// index, so:
//
//   - acquisitions have no fence (Fence is 0);
//   - Release and Extend need the key: use a [syncguard.Lease] (it passes
//     the key), or [LockOnlyDriver.ReleaseKeyed] and
//     [LockOnlyDriver.ExtendKeyed]. Release and Extend by lock ID alone,
//     and LookupByID, fail with InvalidArgument;
//   - an expired lock is reported as not found (the key is gone);
//   - no waiter queue or release notifications: a contended Guard.Acquire
//     retries with its backoff.
//
// Time: whether a lock is live is decided by Redis alone (the key's PX on
// the server's clock). ExpiresAtMs is not read from the server: it is the
// client's clock when the request was sent, plus the TTL — an estimate
// that is off by the client's clock skew and slightly early. LookupByKey
// derives it the same way from the key's remaining PTTL.
//
// Fenced records and rate limits are those of the full driver (the same
// keys, see [New]); AcquiredAtMs is 0 in lookups.
type LockOnlyDriver struct {
	d *Driver
}

// NewLockOnly returns the lock-only Redis driver over client, with the
// options of [New] (the key prefix, the call timeout and the logger apply).
func NewLockOnly(client rueidis.Client, opts ...Option) (*LockOnlyDriver, error) {
	d, err := New(client, opts...)
	if err != nil {
		return nil, err
	}
	return &LockOnlyDriver{d: d}, nil
}

// Capabilities returns the driver's capability type.
func (l *LockOnlyDriver) Capabilities() LockOnlyCapabilities { return LockOnlyCapabilities{} }

// Close is [Driver.Close]; it does not close the client.
func (l *LockOnlyDriver) Close() { l.d.Close() }

// lockKey returns the storage name of the lock of key and the normalised
// key: "<prefix>:lo:<body>". One key per lock, so no hash tag is needed on
// a Cluster.
func (l *LockOnlyDriver) lockKey(key string) (name, k string, err error) {
	k, err = syncguard.NormalizeKey(key)
	if err != nil {
		return "", "", err
	}
	body, err := syncguard.StorageKey("", k, l.d.bodyLimit, 0)
	if err != nil {
		return "", "", err
	}
	if l.d.prefix == "" {
		return "lo:" + body, k, nil
	}
	return l.d.prefix + ":lo:" + body, k, nil
}

var (
	loRelease = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	loExtend  = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	loLookup  = rueidis.NewLuaScript(`local v = redis.call('GET', KEYS[1]) if not v then return false end return {v, redis.call('PTTL', KEYS[1])}`)
)

// Acquire takes key for ttl with SET NX PX (ttl + tolerance): one command.
// A new lock gets a fresh lock ID, Fence 0, and ExpiresAtMs = the client's
// clock at the request + ttl (see [LockOnlyDriver]).
func (l *LockOnlyDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (syncguard.AcquireResult, error) {
	name, k, err := l.lockKey(key)
	if err != nil {
		return syncguard.AcquireResult{}, err
	}
	ttlMs, err := syncguard.TTLMillis(ttl)
	if err != nil {
		return syncguard.AcquireResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.AcquireResult{}, err
	}
	id := syncguard.NewLockID()
	start := time.Now()
	c := l.d.client
	err = l.d.writeCall(ctx, c.B().Set().Key(name).Value(id).Nx().PxMilliseconds(ttlMs+syncguard.ToleranceMs).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return syncguard.AcquireResult{Reason: syncguard.ReasonLocked}, nil
	}
	if err != nil {
		if outcomeUnknown(err) {
			l.d.bg.Add(1)
			go l.releaseUnknown(name, id)
		}
		return syncguard.AcquireResult{}, mapError(ctx, err, k, "")
	}
	return syncguard.AcquireResult{Acquired: true, LockID: id, ExpiresAtMs: start.UnixMilli() + ttlMs}, nil
}

// releaseUnknown deletes the lock a failed Acquire may have written, in
// the background. An acquisition that reaches Redis only after it is not
// undone: lock-only mode has no retired IDs, so such a lock stays until
// its TTL.
func (l *LockOnlyDriver) releaseUnknown(name, id string) {
	defer l.d.bg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), unknownOutcomeRelease)
	defer cancel()
	_ = l.d.exec(ctx, loRelease, []string{name}, []string{id}).Error()
}

func keyRequired(op string) error {
	return syncguard.NewError(syncguard.InvalidArgument, "redis lock-only: "+op+" needs the lock's key (use a Lease, or "+op+"Keyed)")
}

// Release fails with InvalidArgument: without a lock-ID index, a lock is
// found by its key only. Use [LockOnlyDriver.ReleaseKeyed] (a
// [syncguard.Lease] does).
func (l *LockOnlyDriver) Release(ctx context.Context, lockID string) (syncguard.ReleaseResult, error) {
	return syncguard.ReleaseResult{}, keyRequired("Release")
}

// ReleaseKeyed deletes the lock lockID of key if it still holds key
// (compare-and-delete, one script). Detail is "not-found" otherwise,
// expired locks included.
func (l *LockOnlyDriver) ReleaseKeyed(ctx context.Context, key, lockID string) (syncguard.ReleaseResult, error) {
	if key == "" {
		return syncguard.ReleaseResult{}, keyRequired("Release")
	}
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return syncguard.ReleaseResult{}, err
	}
	name, k, err := l.lockKey(key)
	if err != nil {
		return syncguard.ReleaseResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.ReleaseResult{}, err
	}
	c := getCall()
	c.set([]string{name}, lockID)
	n, err := l.d.run(ctx, loRelease, c).AsInt64()
	if err != nil {
		return syncguard.ReleaseResult{}, mapError(ctx, err, k, lockID)
	}
	if n == 1 {
		return syncguard.ReleaseResult{OK: true}, nil
	}
	return syncguard.ReleaseResult{Detail: syncguard.DetailNotFound}, nil
}

// Extend fails with InvalidArgument, like Release.
func (l *LockOnlyDriver) Extend(ctx context.Context, lockID string, ttl time.Duration) (syncguard.ExtendResult, error) {
	return syncguard.ExtendResult{}, keyRequired("Extend")
}

// ExtendKeyed sets the PX of the lock lockID of key to ttl + tolerance if
// it still holds key (compare-and-PEXPIRE). ExpiresAtMs is the client's
// clock at the request + ttl.
func (l *LockOnlyDriver) ExtendKeyed(ctx context.Context, key, lockID string, ttl time.Duration) (syncguard.ExtendResult, error) {
	if key == "" {
		return syncguard.ExtendResult{}, keyRequired("Extend")
	}
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return syncguard.ExtendResult{}, err
	}
	ttlMs, err := syncguard.TTLMillis(ttl)
	if err != nil {
		return syncguard.ExtendResult{}, err
	}
	name, k, err := l.lockKey(key)
	if err != nil {
		return syncguard.ExtendResult{}, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return syncguard.ExtendResult{}, err
	}
	start := time.Now()
	n, err := l.d.exec(ctx, loExtend, []string{name}, []string{lockID, formatInt(ttlMs + syncguard.ToleranceMs)}).AsInt64()
	if err != nil {
		return syncguard.ExtendResult{}, mapError(ctx, err, k, lockID)
	}
	if n == 1 {
		return syncguard.ExtendResult{OK: true, ExpiresAtMs: start.UnixMilli() + ttlMs}, nil
	}
	return syncguard.ExtendResult{Detail: syncguard.DetailNotFound}, nil
}

// IsLocked reports whether key's lock key exists (Redis drops it at the
// end of the tolerance window).
func (l *LockOnlyDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	name, k, err := l.lockKey(key)
	if err != nil {
		return false, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return false, err
	}
	c := l.d.client
	n, err := l.d.do(ctx, c.B().Exists().Key(name).Build()).AsInt64()
	if err != nil {
		return false, mapError(ctx, err, k, "")
	}
	return n == 1, nil
}

// LookupByKey returns what the lock key of key holds: the lock ID's hash,
// Fence 0, AcquiredAtMs 0 and ExpiresAtMs estimated from its PTTL on the
// client's clock; nil if there is none.
func (l *LockOnlyDriver) LookupByKey(ctx context.Context, key string) (*syncguard.LockInfo, error) {
	r, err := l.LookupRawByKey(ctx, key)
	if r == nil || err != nil {
		return nil, err
	}
	return &r.LockInfo, nil
}

// LookupRawByKey is LookupByKey with the raw normalised key and lock ID.
func (l *LockOnlyDriver) LookupRawByKey(ctx context.Context, key string) (*syncguard.RawLockInfo, error) {
	name, k, err := l.lockKey(key)
	if err != nil {
		return nil, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	vals, err := l.d.exec(ctx, loLookup, []string{name}, nil).ToArray()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, mapError(ctx, err, k, "")
	}
	if len(vals) != 2 {
		return nil, badReply("lookup")
	}
	id, err1 := vals[0].ToString()
	pttl, err2 := vals[1].AsInt64()
	if err1 != nil || err2 != nil || !syncguard.ValidLockID(id) {
		return nil, badReply("lookup")
	}
	return &syncguard.RawLockInfo{
		LockInfo: syncguard.LockInfo{
			KeyHash:     syncguard.HashKey(k),
			LockIDHash:  syncguard.HashKey(id),
			ExpiresAtMs: start.UnixMilli() + pttl - syncguard.ToleranceMs,
		},
		Key:    k,
		LockID: id,
	}, nil
}

// LookupByID fails with InvalidArgument: lock-only mode keeps no lock-ID
// index.
func (l *LockOnlyDriver) LookupByID(ctx context.Context, lockID string) (*syncguard.LockInfo, error) {
	return nil, keyRequired("LookupByID")
}

// PutRecord is [Driver.PutRecord].
func (l *LockOnlyDriver) PutRecord(ctx context.Context, name string, fence syncguard.Fence, value []byte, ttl time.Duration) (syncguard.PutResult, error) {
	return l.d.PutRecord(ctx, name, fence, value, ttl)
}

// GetRecord is [Driver.GetRecord].
func (l *LockOnlyDriver) GetRecord(ctx context.Context, name string) (*syncguard.Record, error) {
	return l.d.GetRecord(ctx, name)
}

// DeleteRecord is [Driver.DeleteRecord].
func (l *LockOnlyDriver) DeleteRecord(ctx context.Context, name string, fence syncguard.Fence) (bool, error) {
	return l.d.DeleteRecord(ctx, name, fence)
}

// AllowN is [Driver.AllowN].
func (l *LockOnlyDriver) AllowN(ctx context.Context, key string, limit syncguard.RateLimit, n int) (syncguard.RateResult, error) {
	return l.d.AllowN(ctx, key, limit, n)
}

// ResetRate is [Driver.ResetRate].
func (l *LockOnlyDriver) ResetRate(ctx context.Context, key string) error {
	return l.d.ResetRate(ctx, key)
}
