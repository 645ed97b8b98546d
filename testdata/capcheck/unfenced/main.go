// Command unfenced must NOT compile: its capability type lacks
// driver.WithFencing, so syncguard.FenceOf rejects its leases.
// Built by capabilities_compile_test.go.
package main

import (
	"context"
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
	l, err := g.TryAcquire(context.Background(), "k")
	if err != nil {
		return
	}
	defer l.Close()
	fmt.Println(syncguard.FenceOf(l)) // compile error: caps does not satisfy Fenced
}
