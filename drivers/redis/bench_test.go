package redis

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Benchmarks of an acquire+release pair against the single node, next to
// the raw rueidis baseline that every Redis lock reduces to: SET key id NX
// PX ttl, then a compare-and-delete script. Run both in one invocation and
// compare with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./drivers/redis/ | tee bench.txt
//
// The driver does more per pair (fence counter, lock-ID index, server
// clock, failover check, release notification), all inside the two round
// trips the baseline also needs.

const benchTTL = 30 * time.Second

var casDelete = rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

func benchClient(b *testing.B) rueidis.Client {
	return newClient(b, []string{singleAddr()})
}

// BenchmarkPair/driver: Acquire + Release through the driver; the keys
// cycle so that each pair is uncontended.
func BenchmarkPair(b *testing.B) {
	c := benchClient(b)
	ctx, cancel := context.WithCancel(context.Background()) // cancellable, as in real use
	defer cancel()
	// BenchmarkPair/driver-background-ctx: the same with a context that can never end.
	// The driver used to run such calls inline, without the goroutine that
	// lets it return at once; since the call timeout (issue 16) every call
	// takes the same path.
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{{"driver", ctx}, {"driver-background-ctx", context.Background()}} {
		b.Run(bc.name, func(b *testing.B) {
			d := newDriver(b, c)
			keys := benchKeys(64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !driverPair(b, bc.ctx, d, keys[i&63], "") {
					b.FailNow()
				}
			}
		})
	}
	b.Run("raw-setnx", func(b *testing.B) {
		prefix := testPrefix("raw")
		b.Cleanup(func() { deletePrefix(c, prefix) }) // not timed
		keys := benchKeys(64)
		for i := range keys {
			keys[i] = prefix + ":" + keys[i]
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rawPair(b, ctx, c, keys[i&63])
		}
	})
}

// BenchmarkPairParallel runs pairs from GOMAXPROCS×8 goroutines on
// distinct keys (rueidis pipelines them over its connection).
func BenchmarkPairParallel(b *testing.B) {
	c := benchClient(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("driver", func(b *testing.B) {
		d := newDriver(b, c)
		parallelPairs(b, 8, "", false, func(key string) bool { return driverPair(b, ctx, d, key, "") })
	})
	b.Run("raw-setnx", func(b *testing.B) {
		prefix := testPrefix("raw")
		b.Cleanup(func() { deletePrefix(c, prefix) }) // not timed
		parallelPairs(b, 8, prefix+":", false, func(key string) bool { return rawPair(b, ctx, c, key) })
	})
}

// parallelPairs runs pair from GOMAXPROCS×par goroutines (see
// [testing.B.SetParallelism]), each on keys of its own: the one key
// keyPrefix+"par:N" of goroutine N, or with fresh a new key
// keyPrefix+"par:N:i" for its i-th pair. A goroutine stops at its first
// failed pair.
func parallelPairs(b *testing.B, par int, keyPrefix string, fresh bool, pair func(key string) bool) {
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := keyPrefix + "par:" + strconv.FormatInt(seq.Add(1), 10)
		if !fresh {
			for pb.Next() {
				if !pair(key) {
					return
				}
			}
			return
		}
		key += ":"
		for i := 0; pb.Next(); i++ {
			if !pair(key + strconv.Itoa(i)) {
				return
			}
		}
	})
}

// driverPair acquires key through l and releases it, passing releaseKey
// as Release's key ("" for a [Driver]; a [LockOnlyDriver] needs the key);
// it reports a failure and returns false.
func driverPair(b *testing.B, ctx context.Context, l driver.LockStore, key, releaseKey string) bool {
	r, err := l.Acquire(ctx, key, benchTTL)
	if err != nil || !r.Acquired {
		b.Errorf("Acquire = %+v, %v", r, err)
		return false
	}
	if rr, err := l.Release(ctx, releaseKey, r.LockID); err != nil || !rr.OK {
		b.Errorf("Release = %+v, %v", rr, err)
		return false
	}
	return true
}

// rawPair is the baseline: SET NX PX with a fresh random token, then a
// compare-and-delete by SHA. It reports a failure and returns false.
func rawPair(b *testing.B, ctx context.Context, c rueidis.Client, key string) bool {
	id := driver.NewLockID()
	err := c.Do(ctx, c.B().Set().Key(key).Value(id).Nx().PxMilliseconds(benchTTL.Milliseconds()).Build()).Error()
	if err != nil {
		b.Errorf("SET NX: %v", err)
		return false
	}
	if n, err := casDelete.Exec(ctx, c, []string{key}, []string{id}).AsInt64(); err != nil || n != 1 {
		b.Errorf("compare-and-delete = %d, %v", n, err)
		return false
	}
	return true
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "bench:" + strconv.Itoa(i)
	}
	return keys
}

// BenchmarkGuardPair: TryAcquire + Lease.Release through Guard, the path
// of most applications (issue 21: allocations per pair ≤ 12).
func BenchmarkGuardPair(b *testing.B) {
	c := benchClient(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := syncguard.New(newDriver(b, c))
	keys := benchKeys(64)
	opts := []syncguard.AcquireOption{syncguard.TTL(benchTTL), syncguard.AutoExtend(false)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := g.TryAcquire(ctx, keys[i&63], opts...)
		if err != nil {
			b.Fatalf("TryAcquire: %v", err)
		}
		if ok, err := l.Release(ctx); err != nil || !ok {
			b.Fatalf("Release = %v, %v", ok, err)
		}
	}
}

// BenchmarkLockOnlyParallel runs pairs from 64 goroutines (GOMAXPROCS×
// parallelism) on distinct keys: Guard over the lock-only driver, the
// driver alone and raw rueidis (issue 19: Guard ≥ 0.9× raw).
func BenchmarkLockOnlyParallel(b *testing.B) {
	c := benchClient(b)
	ctx, cancel := context.WithCancel(context.Background()) // as the compare command's
	defer cancel()
	par := max(64/runtime.GOMAXPROCS(0), 1)
	newLO := func(b *testing.B) *LockOnlyDriver {
		prefix := testPrefix("lo")
		d, err := NewLockOnly(c, WithKeyPrefix(prefix))
		if err != nil {
			b.Fatalf("NewLockOnly: %v", err)
		}
		b.Cleanup(func() { d.Close(); deletePrefix(c, prefix) })
		return d
	}
	b.Run("guard", func(b *testing.B) {
		g := syncguard.New(newLO(b))
		opts := []syncguard.AcquireOption{syncguard.TTL(benchTTL), syncguard.AutoExtend(false)}
		parallelPairs(b, par, "", true, func(key string) bool {
			l, err := g.TryAcquire(ctx, key, opts...)
			if err != nil {
				b.Errorf("TryAcquire: %v", err)
				return false
			}
			if ok, err := l.Release(ctx); err != nil || !ok {
				b.Errorf("Release = %v, %v", ok, err)
				return false
			}
			return true
		})
	})
	b.Run("driver", func(b *testing.B) {
		d := newLO(b)
		parallelPairs(b, par, "", true, func(key string) bool { return driverPair(b, ctx, d, key, key) })
	})
	b.Run("raw-setnx", func(b *testing.B) {
		prefix := testPrefix("raw")
		b.Cleanup(func() { deletePrefix(c, prefix) }) // not timed
		parallelPairs(b, par, prefix+":", true, func(key string) bool { return rawPair(b, ctx, c, key) })
	})
}
