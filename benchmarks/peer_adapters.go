package benchmarks

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/jackc/pgx/v5/pgxpool"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
	"github.com/syncguard/syncguard/driver"
)

// Peer configuration. Each peer runs with its documented defaults except
// where the scenario needs otherwise (retry without a limit; the
// contended scenario bounds every wait by its context):
//
//   - redsync: one go-redis v9 client (default pool), 30 s expiry, tries
//     unlimited, its default retry delay (random 50–250 ms).
//   - redislock: one go-redis v9 client, 30 s TTL, LinearBackoff(100 ms)
//     as in its README (unlimited; bounded by ctx).
//   - rueidislock: KeyMajority 1 (a single Redis), NoLoopTracking, its
//     default validity (5 s, extended every 2.5 s); waiting uses
//     client-side-caching invalidations; unlock cancels the lock context
//     and deletes the key in the background.
//   - raw-rueidis: SET key token NX PX, then a compare-and-delete script
//     by SHA; TryLock only.
//   - pg-advisory: session-level pg_advisory_lock / pg_try_advisory_lock
//     on a pooled connection held for the lock's lifetime.

func newGoRedis() *goredislib.Client {
	return goredislib.NewClient(&goredislib.Options{Addr: RedisAddr()})
}

// redsync

type redsyncLocker struct {
	c  *goredislib.Client
	rs *redsync.Redsync
	ns string
}

func newRedsync(ns string) (Locker, error) {
	c := newGoRedis()
	return &redsyncLocker{c: c, rs: redsync.New(goredis.NewPool(c)), ns: ns}, nil
}

func (l *redsyncLocker) lock(ctx context.Context, key string, tries int) (Unlock, error) {
	m := l.rs.NewMutex("rs:"+key, redsync.WithExpiry(LockTTL), redsync.WithTries(tries))
	if err := m.LockContext(ctx); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { _, err := m.UnlockContext(ctx); return err }, nil
}

func (l *redsyncLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	return l.lock(ctx, key, 1<<30)
}

func (l *redsyncLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	u, err := l.lock(ctx, key, 1)
	var taken *redsync.ErrTaken
	switch {
	case err == nil:
		return u, true, nil
	case errors.Is(err, redsync.ErrFailed), errors.As(err, &taken):
		return nil, false, nil
	}
	return nil, false, err
}

func (l *redsyncLocker) Close() { _ = l.c.Close() }

// bsm/redislock

type redislockLocker struct {
	c  *goredislib.Client
	lc *redislock.Client
}

func newRedislock(ns string) (Locker, error) {
	c := newGoRedis()
	return &redislockLocker{c: c, lc: redislock.New(c)}, nil
}

func (l *redislockLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	lk, err := l.lc.Obtain(ctx, "rl:"+key, LockTTL, &redislock.Options{RetryStrategy: redislock.LinearBackoff(100 * time.Millisecond)})
	if err != nil {
		return nil, err
	}
	return lk.Release, nil
}

func (l *redislockLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	lk, err := l.lc.Obtain(ctx, "rl:"+key, LockTTL, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return lk.Release, true, nil
}

func (l *redislockLocker) Close() { _ = l.c.Close() }

// rueidislock

type rueidisLocker struct{ l rueidislock.Locker }

func newRueidislock(ns string) (Locker, error) {
	l, err := rueidislock.NewLocker(rueidislock.LockerOption{
		ClientOption:   rueidis.ClientOption{InitAddress: []string{RedisAddr()}},
		KeyMajority:    1,
		NoLoopTracking: true,
	})
	if err != nil {
		return nil, err
	}
	return &rueidisLocker{l: l}, nil
}

func (l *rueidisLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	_, cancel, err := l.l.WithContext(ctx, key)
	if err != nil {
		return nil, err
	}
	return func(context.Context) error { cancel(); return nil }, nil
}

func (l *rueidisLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	_, cancel, err := l.l.TryWithContext(ctx, key)
	if errors.Is(err, rueidislock.ErrNotLocked) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return func(context.Context) error { cancel(); return nil }, true, nil
}

func (l *rueidisLocker) Close() { l.l.Close() }

// raw rueidis: SET NX PX + compare-and-delete

var casDelete = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

type rawLocker struct{ c rueidis.Client }

func newRawRueidis(ns string) (Locker, error) {
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil, err
	}
	return &rawLocker{c: c}, nil
}

func (l *rawLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	return pollLock(ctx, key, l.TryLock)
}

// pollLock is a Lock for a library without one: tryLock every millisecond
// until it succeeds, fails or ctx ends.
func pollLock(ctx context.Context, key string, tryLock func(context.Context, string) (Unlock, bool, error)) (Unlock, error) {
	for {
		u, ok, err := tryLock(ctx, key)
		if err != nil || ok {
			return u, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (l *rawLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	k := "raw:" + key
	id := driver.NewLockID()
	err := l.c.Do(ctx, l.c.B().Set().Key(k).Value(id).Nx().PxMilliseconds(LockTTL.Milliseconds()).Build()).Error()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return func(ctx context.Context) error {
		n, err := casDelete.Exec(ctx, l.c, []string{k}, []string{id}).AsInt64()
		if err == nil && n != 1 {
			err = errors.New("raw: compare-and-delete found another owner")
		}
		return err
	}, true, nil
}

func (l *rawLocker) Close() { l.c.Close() }

// PostgreSQL advisory locks

type advisoryLocker struct{ pool *pgxpool.Pool }

func newPGAdvisory(ns string) (Locker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(PostgresURL())
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &advisoryLocker{pool: pool}, nil
}

func advisoryKey(key string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return int64(h.Sum64())
}

func (l *advisoryLocker) Lock(ctx context.Context, key string) (Unlock, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	k := advisoryKey(key)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", k); err != nil {
		conn.Release()
		return nil, err
	}
	return func(ctx context.Context) error {
		defer conn.Release()
		_, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", k)
		return err
	}, nil
}

func (l *advisoryLocker) TryLock(ctx context.Context, key string) (Unlock, bool, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	k := advisoryKey(key)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", k).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func(ctx context.Context) error {
		defer conn.Release()
		_, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", k)
		return err
	}, true, nil
}

func (l *advisoryLocker) Close() { l.pool.Close() }
