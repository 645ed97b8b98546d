package benchmarks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
	sgredis "github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/semaphore"
)

// Semaphores: a Locker whose TryLock takes one of Permits permits of the
// key, for BenchmarkSemaphore.

// SemaphoreImpl is a counting semaphore under test.
type SemaphoreImpl struct {
	Name string
	New  func(ns string, permits int) (Locker, error)
}

// SemaphoreImpls returns the semaphores under test: SyncGuard's over the
// Redis driver, and the algorithm of Redisson's RPermitExpirableSemaphore
// (a counter of free permits and a sorted set of permit deadlines, one
// Lua script per acquire and per release, a PUBLISH to wake waiters)
// written for this benchmark on rueidis — Redisson itself is Java.
func SemaphoreImpls() []SemaphoreImpl {
	return []SemaphoreImpl{
		{Name: "syncguard-redis", New: newSyncGuardSemaphore},
		{Name: "redisson-style-lua", New: newRedissonStyleSemaphore},
	}
}

func newSyncGuardSemaphore(ns string, permits int) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	d, err := sgredis.New(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, ok := any(d).(driver.PermitStore); !ok {
		d.Close()
		c.Close()
		return nil, ErrUnavailable
	}
	s, err := semaphore.New(d, permits)
	if err != nil {
		d.Close()
		c.Close()
		return nil, err
	}
	return &guardLocker[sgredis.Capabilities]{g: s, close: func() { d.Close(); c.Close() }}, nil
}

// redissonSem is the Redisson-style semaphore: key holds the number of
// free permits (set once to the count, as trySetPermits does), key+":t"
// the permits' deadlines (client time, ms) by permit ID.
type redissonSem struct {
	c       rueidis.Client
	permits int
	set     sync.Map // keys whose permit count is set
}

// Acquire: reclaim expired permits, then take one if any is free. The
// same steps, in the same order, as Redisson's script.
var redissonAcquire = rueidis.NewLuaScript(`
local expired = redis.call('zrangebyscore', KEYS[2], 0, ARGV[3], 'limit', 0, ARGV[1])
if #expired > 0 then
  redis.call('zrem', KEYS[2], unpack(expired))
  local free = redis.call('incrby', KEYS[1], #expired)
  if tonumber(free) > 0 then redis.call('publish', KEYS[3], free) end
end
local free = redis.call('get', KEYS[1])
if free ~= false and tonumber(free) >= tonumber(ARGV[1]) then
  redis.call('decrby', KEYS[1], ARGV[1])
  redis.call('zadd', KEYS[2], ARGV[2], ARGV[4])
  local ttl = redis.call('pttl', KEYS[1])
  if ttl > 0 then redis.call('pexpire', KEYS[2], ttl) end
  return 'OK'
end
local first = redis.call('zrange', KEYS[2], 0, 0, 'WITHSCORES')
if first[1] ~= nil then return ':' .. tostring(first[2]) end
return false`)

// Release: remove the permit, give it back, wake waiters.
var redissonRelease = rueidis.NewLuaScript(`
local deadline = redis.call('zscore', KEYS[3], ARGV[1])
local removed = redis.call('zrem', KEYS[3], ARGV[1])
if tonumber(removed) ~= 1 then return 0 end
local free = redis.call('incrby', KEYS[1], 1)
redis.call('publish', KEYS[2], free)
if tonumber(deadline) <= tonumber(ARGV[2]) then return 0 end
return 1`)

func newRedissonStyleSemaphore(ns string, permits int) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	return &redissonSem{c: c, permits: permits}, nil
}

func (s *redissonSem) keys(key string) (free, deadlines, channel string) {
	return "{" + key + "}", "{" + key + "}:t", "{" + key + "}:ch"
}

func (s *redissonSem) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	free, deadlines, channel := s.keys(key)
	// trySetPermits (SET NX), once per key and process, as Redisson
	// users call it at start-up.
	if _, done := s.set.Load(key); !done {
		if err := s.c.Do(ctx, s.c.B().Set().Key(free).Value(strconv.Itoa(s.permits)).Nx().Build()).Error(); err != nil && !rueidis.IsRedisNil(err) {
			return nil, false, err
		}
		s.set.Store(key, true)
	}
	return s.tryLock(ctx, free, deadlines, channel)
}

func (s *redissonSem) tryLock(ctx context.Context, free, deadlines, channel string) (Unlock, bool, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := time.Now().UnixMilli()
	res, err := redissonAcquire.Exec(ctx, s.c, []string{free, deadlines, channel},
		[]string{"1", strconv.FormatInt(now+LockTTL.Milliseconds(), 10), strconv.FormatInt(now, 10), id}).ToString()
	if rueidis.IsRedisNil(err) || (err == nil && res != "OK") {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return func(ctx context.Context) error {
		return redissonRelease.Exec(ctx, s.c, []string{free, channel, deadlines},
			[]string{id, strconv.FormatInt(time.Now().UnixMilli(), 10)}).Error()
	}, true, nil
}

func (s *redissonSem) Lock(ctx context.Context, key string) (Unlock, error) {
	return pollLock(ctx, key, s.TryLock)
}

func (s *redissonSem) Close() { s.c.Close() }
