// Package churn drives a driver through many distinct keys, for the
// drivers' storage tests: state must follow the live locks, not every key
// ever locked.
package churn

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// Locker is the part of a driver Run needs.
type Locker interface {
	Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error)
	Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error)
}

// Run acquires and releases the keys prefix0 … prefix(n−1), each once,
// from workers goroutines, and returns how long it took and the first
// error.
func Run(ctx context.Context, d Locker, prefix string, n, workers int) (time.Duration, error) {
	start := time.Now()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r, err := d.Acquire(ctx, prefix+strconv.Itoa(i), time.Minute)
				if err == nil && r.Acquired {
					_, err = d.Release(ctx, "", r.LockID)
				}
				if err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), first
}
