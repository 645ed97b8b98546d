// Command unfenced must NOT compile: its capability type lacks
// syncguard.WithFencing, so syncguard.FenceOf rejects its leases.
// Built by capabilities_compile_test.go.
package main

import (
	"context"
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
	l, err := g.TryAcquire(context.Background(), "k")
	if err != nil {
		return
	}
	defer l.Close()
	fmt.Println(syncguard.FenceOf(l)) // compile error: caps does not satisfy FencedCapabilities
}
