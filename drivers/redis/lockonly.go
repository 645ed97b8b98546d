package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// Compile-time checks of the lock-only driver.
var (
	_ driver.Driver[LockOnlyCapabilities] = (*LockOnlyDriver)(nil)
	_ driver.ServerTime                   = LockOnlyCapabilities{}
)

// LockOnlyCapabilities is the capability type of the lock-only Redis
// driver ([NewLockOnly]): no fencing tokens (FenceOf, FencedWriter and
// OncePerKey do not compile with it). Expiry is judged by the Redis
// server's clock (the lock key's PX), so it declares a server time
// authority; but see [LockOnlyDriver] for what its ExpiresAtMs means.
type LockOnlyCapabilities struct {
	driver.WithServerTime
	driver.WithCrossProcess
}

// Name returns "redis-lockonly".
func (LockOnlyCapabilities) Name() string { return "redis-lockonly" }

// LockOnlyDriver is the Redis driver's lock-only mode: a lock is one
// string key, <prefix>:lo:<key> = lockID, written with SET NX PX (ttl +
// [driver.Tolerance]) and deleted or extended by a compare-and-delete
// or compare-and-PEXPIRE script. There is no fence counter and no lock-ID
// index, so:
//
//   - acquisitions have no fence (Fence is 0);
//   - Release and Extend need the key (a [syncguard.Lease] passes it);
//     Release and Extend by lock ID alone (key ""), and LookupByID, fail
//     with InvalidArgument;
//   - an expired lock is reported as not found (the key is gone);
//   - no waiter queue or release notifications: a contended Guard.Acquire
//     retries with its backoff.
//
// Time: whether a lock is live is decided by Redis alone (the key's PX on
// the server's clock). ExpiresAtMs is not read from the server: it is the
// client's clock when the request was sent, plus the TTL — an estimate
// that is off by the client's clock skew and slightly early. LookupByKey
// reports the value Acquire or Extend stored with the lock.
//
// Rate limits are those of the full driver (the same keys, see [New]);
// there are no fenced records (they need fences).
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

// lockKey normalises key, derives the storage name of its lock
// ([LockOnlyDriver.lockName]) and checks the context. It returns the name
// and the normalised key.
func (l *LockOnlyDriver) lockKey(ctx context.Context, key string) (name, k string, err error) {
	k, err = driver.NormalizeKey(key)
	if err != nil {
		return "", "", err
	}
	name, err = l.lockName(ctx, k)
	return name, k, err
}

// lockName returns the storage name of the lock of the normalised key k,
// "<prefix>:lo:<body>", then checks the context. One key per lock, so no
// hash tag is needed on a Cluster.
func (l *LockOnlyDriver) lockName(ctx context.Context, k string) (string, error) {
	body, err := driver.StorageKey("", k, l.d.bodyLimit, 0)
	if err != nil {
		return "", err
	}
	if l.d.prefix != "" {
		body = l.d.prefix + ":lo:" + body
	} else {
		body = "lo:" + body
	}
	return body, driver.CheckContext(ctx)
}

var (
	// A lock's value is "<lockID>|<expiresAtMs>|<acquiredAtMs>" (the
	// client's clock), so lookups report what Acquire and Extend did.
	loRelease = rueidis.NewLuaScript(`local v = redis.call('GET', KEYS[1]) if v and string.sub(v, 1, 22) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	loExtend  = rueidis.NewLuaScript(`local v = redis.call('GET', KEYS[1]) if not v or string.sub(v, 1, 22) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3] .. '|' .. string.match(v, '^[^|]*|[^|]*|(.*)$'), 'PX', ARGV[2]) return 1`)
)

// Acquire takes key for ttl with SET NX PX (ttl + tolerance): one command.
// A new lock gets a fresh lock ID, Fence 0, and ExpiresAtMs = the client's
// clock at the request + ttl (see [LockOnlyDriver]).
func (l *LockOnlyDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	k, ttlMs, err := driver.ValidateKeyTTL(key, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	name, err := l.lockName(ctx, k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	id := driver.NewLockID()
	start := time.Now().UnixMilli()
	c := l.d.client
	// The value, built in one allocation.
	var buf [64]byte
	vb := append(buf[:0], id...)
	vb = append(vb, '|')
	vb = strconv.AppendInt(vb, start+ttlMs, 10)
	vb = append(vb, '|')
	vb = strconv.AppendInt(vb, start, 10)
	v := string(vb)
	err = l.d.writeCall(ctx, c.B().Set().Key(name).Value(v).Nx().PxMilliseconds(ttlMs+driver.ToleranceMs).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	if err != nil {
		if outcomeUnknown(err) {
			l.d.bg.Add(1)
			go l.releaseUnknown(name, id)
		}
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	return driver.AcquireResult{Acquired: true, LockID: id, ExpiresAtMs: start + ttlMs}, nil
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
	return driver.NewError(driver.InvalidArgument, "redis lock-only: "+op+" needs the lock's key: there is no lock-ID index (a Lease passes its key)")
}

// Release deletes the lock lockID of key if it still holds key
// (compare-and-delete, one script). Detail is "not-found" otherwise,
// expired locks included. key "" is InvalidArgument: there is no lock-ID
// index.
func (l *LockOnlyDriver) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	if key == "" {
		return driver.ReleaseResult{}, keyRequired("Release")
	}
	name, k, err := l.lockKey(ctx, key)
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	c := getCall()
	c.set([]string{name}, lockID)
	n, err := l.d.run(ctx, loRelease, c).AsInt64()
	if err != nil {
		return driver.ReleaseResult{}, mapError(ctx, err, k, lockID)
	}
	if n == 1 {
		return driver.ReleaseResult{OK: true}, nil
	}
	return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
}

// Extend sets the PX of the lock lockID of key to ttl + tolerance if it
// still holds key (compare-and-PEXPIRE). ExpiresAtMs is the client's clock
// at the request + ttl. key "" is InvalidArgument, as for Release.
func (l *LockOnlyDriver) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return driver.ExtendResult{}, err
	}
	if key == "" {
		return driver.ExtendResult{}, keyRequired("Extend")
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	name, k, err := l.lockKey(ctx, key)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	exp := time.Now().UnixMilli() + ttlMs
	n, err := l.d.exec(ctx, loExtend, []string{name}, []string{lockID, formatInt(ttlMs + driver.ToleranceMs), formatInt(exp)}).AsInt64()
	if err != nil {
		return driver.ExtendResult{}, mapError(ctx, err, k, lockID)
	}
	if n == 1 {
		return driver.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
	}
	return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
}

// IsLocked reports whether key's lock key exists (Redis drops it at the
// end of the tolerance window).
func (l *LockOnlyDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	name, k, err := l.lockKey(ctx, key)
	if err != nil {
		return false, err
	}
	c := l.d.client
	n, err := l.d.do(ctx, c.B().Exists().Key(name).Build()).AsInt64()
	if err != nil {
		return false, mapError(ctx, err, k, "")
	}
	return n == 1, nil
}

// LookupByKey returns the lock of key: its lock ID, Fence 0, and the
// expiry and acquisition time Acquire and Extend recorded on the client's
// clock; nil if there is none (Redis dropped an expired lock's key).
func (l *LockOnlyDriver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	name, k, err := l.lockKey(ctx, key)
	if err != nil {
		return nil, err
	}
	v, ok, err := l.d.get(ctx, name, k)
	if !ok || err != nil {
		return nil, err
	}
	id, rest, ok1 := strings.Cut(v, "|")
	exp, acq, ok2 := strings.Cut(rest, "|")
	e, err1 := strconv.ParseInt(exp, 10, 64)
	a, err2 := strconv.ParseInt(acq, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || !driver.ValidLockID(id) {
		return nil, badReply("lookup")
	}
	return &driver.LockInfo{Key: k, LockID: id, ExpiresAtMs: e, AcquiredAtMs: a}, nil
}

// LookupByID fails with InvalidArgument: lock-only mode keeps no lock-ID
// index.
func (l *LockOnlyDriver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	if err := driver.ValidateLockID(lockID); err != nil {
		return nil, err
	}
	return nil, keyRequired("LookupByID")
}

// AllowN is [Driver.AllowN].
func (l *LockOnlyDriver) AllowN(ctx context.Context, key string, limit driver.RateLimit, n int) (driver.RateResult, error) {
	return l.d.AllowN(ctx, key, limit, n)
}

// ResetRate is [Driver.ResetRate].
func (l *LockOnlyDriver) ResetRate(ctx context.Context, key string) error {
	return l.d.ResetRate(ctx, key)
}
