// Command unfencedprims must NOT compile: the primitives that rely on
// fencing tokens (FencedWriter, OncePerKey, the mutex's fence) reject a
// capability type without syncguard.WithFencing.
// Built by capabilities_compile_test.go.
package main

import (
	"fmt"

	"github.com/syncguard/syncguard"
)

type caps struct {
	syncguard.WithServerTime
}

func (caps) Name() string { return "unfenced" }

// driver wraps any Backend and declares caps.
type driver struct{ syncguard.Backend }

func (driver) Capabilities() caps { return caps{} }

func main() {
	g := syncguard.New(driver{})

	// A DistributedMutex works without fencing …
	m, _ := syncguard.NewMutex(g, "k")
	// … but its fence does not exist:
	fmt.Println(syncguard.FenceOf(m.Lease())) // compile error

	_, _ = syncguard.NewFencedWriter(g)    // compile error
	_, _ = syncguard.NewOncePerKey[int](g) // compile error
}
