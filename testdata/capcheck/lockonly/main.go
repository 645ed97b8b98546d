// Command lockonly must NOT compile: the Redis lock-only mode's capability
// type has no fencing, so FenceOf, FencedWriter, OncePerKey, the semaphore
// and leader election reject it. Built by capabilities_compile_test.go.
package main

import (
	"context"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/election"
	"github.com/syncguard/syncguard/semaphore"
)

func main() {
	var d *redis.LockOnlyDriver // from redis.NewLockOnly(client)
	g := syncguard.New(d)
	l, _ := g.TryAcquire(context.Background(), "k") // locking works …
	_ = syncguard.FenceOf(l)                        // compile error
	_, _ = syncguard.NewFencedWriter(g)             // compile error
	_, _ = syncguard.NewOncePerKey[int](g)          // compile error
	_, _ = semaphore.New(d, 2)                      // compile error
	_, _ = election.New(g, "scheduler")             // compile error
}
