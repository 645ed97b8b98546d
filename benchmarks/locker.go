package benchmarks

import (
	"context"
	"errors"
	"os"
)

// Unlock releases a lock obtained from a [Locker].
type Unlock func(ctx context.Context) error

// Locker is the common shape of every library under test.
type Locker interface {
	// Lock waits until key is acquired or ctx ends.
	Lock(ctx context.Context, key string) (Unlock, error)
	// TryLock makes one attempt; ok is false when key is held.
	TryLock(ctx context.Context, key string) (u Unlock, ok bool, err error)
	// Close releases the locker's clients.
	Close()
}

// Backend names.
const (
	Redis    = "redis"
	Postgres = "postgres"
	Memory   = "memory"
)

// Impl describes one library under test.
type Impl struct {
	// Name is the short name used in tables and sub-benchmark names.
	Name string
	// Backend is Redis, Postgres or Memory.
	Backend string
	// SyncGuard marks SyncGuard's own adapters.
	SyncGuard bool
	// Baseline marks raw baselines (not lock libraries).
	Baseline bool
	// Driver marks a SyncGuard driver called directly, without Guard.
	Driver bool
	// NoContended excludes it from the contended scenario (it has no
	// waiting Lock of its own).
	NoContended bool
	// TopLevel names the Redis commands (commandstats names, such as
	// "set") the library sends outside scripts, for the server time per
	// pair; scripts are always counted.
	TopLevel []string
	// New builds a Locker with its own client(s). ns is a namespace unique
	// to the run, used in key names.
	New func(ns string) (Locker, error)
}

// ErrUnavailable marks a library that cannot be measured here.
var ErrUnavailable = errors.New("unavailable")

// RedisAddr is the Redis server under test.
func RedisAddr() string {
	if a := os.Getenv("SYNCGUARD_BENCH_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// PostgresURL is the PostgreSQL server under test.
func PostgresURL() string {
	if u := os.Getenv("SYNCGUARD_BENCH_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test"
}

// Impls returns every library under test, SyncGuard's adapters first.
func Impls() []Impl {
	return []Impl{
		{Name: "syncguard-redis", Backend: Redis, SyncGuard: true, New: newSyncGuardRedis},
		{Name: "redsync", Backend: Redis, TopLevel: []string{"set"}, New: newRedsync},
		{Name: "redislock", Backend: Redis, New: newRedislock},
		{Name: "rueidislock", Backend: Redis, New: newRueidislock},
		{Name: "raw-rueidis", Backend: Redis, Baseline: true, NoContended: true, TopLevel: []string{"set"}, New: newRawRueidis},
		{Name: "syncguard-postgres", Backend: Postgres, SyncGuard: true, New: newSyncGuardPostgres},
		{Name: "pg-advisory", Backend: Postgres, Baseline: true, New: newPGAdvisory},
		{Name: "pglock", Backend: Postgres, New: newPGLock},
		{Name: "syncguard-memory", Backend: Memory, SyncGuard: true, New: newSyncGuardMemory},
		// Guard over the Redis driver's lock-only mode (no fences).
		{Name: "sg-redis-lockonly", Backend: Redis, Driver: true, TopLevel: []string{"set"}, New: newSyncGuardRedisLockOnly},
		{Name: "sg-lockonly-driver", Backend: Redis, Driver: true, NoContended: true, TopLevel: []string{"set"}, New: newSyncGuardLockOnlyDriver},
		// The drivers alone, without Guard (no waiting Lock).
		{Name: "sg-redis-driver", Backend: Redis, Driver: true, NoContended: true, New: newSyncGuardRedisDriver},
		// Guard over a rueidis client without auto-pipelining (pooled
		// connections), to choose the client options.
		{Name: "sg-redis-pooled", Backend: Redis, Driver: true, New: newSyncGuardRedisPooled},
		// Guard over the PostgreSQL driver through PgBouncer
		// ($SYNCGUARD_BENCH_PGBOUNCER), transaction pooling.
		{Name: "sg-postgres-pgbouncer", Backend: Postgres, Driver: true, New: newSyncGuardPgBouncer},
		{Name: "sg-postgres-driver", Backend: Postgres, Driver: true, NoContended: true, New: newSyncGuardPostgresDriver},
		{Name: "sg-memory-driver", Backend: Memory, Driver: true, NoContended: true, New: newSyncGuardMemoryDriver},
	}
}

// Find returns the Impl called name.
func Find(name string) (Impl, bool) {
	for _, im := range Impls() {
		if im.Name == name {
			return im, true
		}
	}
	return Impl{}, false
}
