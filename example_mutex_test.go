package syncguard_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// A DistributedMutex is a sync.Locker: code written for sync.Mutex works
// unchanged, and the exclusion now spans every process on the backend.
func ExampleDistributedMutex() {
	g := syncguard.New(memory.New())
	m, err := syncguard.NewMutex(g, "counter")
	if err != nil {
		fmt.Println(err)
		return
	}

	var (
		counter int
		wg      sync.WaitGroup
		locker  sync.Locker = m
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			locker.Lock()
			defer locker.Unlock()
			counter++
		}()
	}
	wg.Wait()
	fmt.Println("counter:", counter)
	// Output:
	// counter: 10
}

// LockContext bounds the wait; while the mutex is held its context is
// cancelled if the lock is lost, and FenceOf(m.Lease()) gives the fencing
// token for the protected resource.
func ExampleDistributedMutex_LockContext() {
	g := syncguard.New(memory.New())
	m, _ := syncguard.NewMutex(g, "invoice:42")

	ctx := context.Background()
	if err := m.LockContext(ctx); err != nil {
		fmt.Println("lock:", err)
		return
	}
	fmt.Println("fenced:", syncguard.FenceOf(m.Lease()) > 0)
	fmt.Println("try again:", m.TryLock())
	select {
	case <-m.Lost():
		fmt.Println("lost")
	default:
		fmt.Println("held")
	}
	fmt.Println("unlock:", m.UnlockContext(ctx))
	// Output:
	// fenced: true
	// try again: false
	// held
	// unlock: <nil>
}

// TryLockContext tells "another holder runs it" (false, nil) from "cannot
// tell" (false, err), which TryLock reports alike as false.
func ExampleDistributedMutex_TryLockContext() {
	d := memory.New()
	g := syncguard.New(d)
	ctx := context.Background()
	other, _ := g.TryAcquire(ctx, "report:nightly") // another process holds it
	m, _ := syncguard.NewMutex(g, "report:nightly")

	ok, err := m.TryLockContext(ctx)
	switch {
	case err != nil:
		fmt.Println("cannot tell whether the report runs elsewhere:", err)
	case !ok:
		fmt.Println("another instance is running the report")
	default:
		defer m.Unlock()
		fmt.Println("running the report")
	}
	other.Close()
	// Output:
	// another instance is running the report
}
