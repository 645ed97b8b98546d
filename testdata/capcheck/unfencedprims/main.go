// Command unfencedprims must NOT compile: the primitives that rely on
// fencing tokens (FencedWriter, OncePerKey, the mutex's fence) and
// NewFenced reject a capability type without driver.WithFencing.
// Built by capabilities_compile_test.go.
package main

import (
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

type caps struct {
	driver.WithServerTime
	driver.WithCrossProcess
}

func (caps) Name() string { return "unfenced" }

// fake wraps any LockStore and declares caps.
type fake struct{ driver.LockStore }

func (fake) Capabilities() caps { return caps{} }

func main() {
	g := syncguard.New(fake{})

	// A DistributedMutex works without fencing …
	m, _ := syncguard.NewMutex(g, "k")
	// … but its fence does not exist:
	fmt.Println(syncguard.FenceOf(m.Lease())) // compile error

	_, _ = syncguard.NewFencedWriter(g)    // compile error
	_, _ = syncguard.NewOncePerKey[int](g) // compile error
	_ = syncguard.NewFenced(fake{})        // compile error
}
