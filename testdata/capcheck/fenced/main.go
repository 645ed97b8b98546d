// Command fenced must compile: its capability type declares fencing and a
// server time authority, so FenceOf and a ServerTimeCapabilities-constrained
// function accept its Guard. Built by capabilities_compile_test.go.
package main

import (
	"context"
	"fmt"

	"github.com/syncguard/syncguard"
)

type caps struct {
	syncguard.WithFencing
	syncguard.WithServerTime
}

func (caps) Name() string { return "fenced" }

// driver wraps any Backend and declares caps.
type driver struct{ syncguard.Backend }

func (driver) Capabilities() caps { return caps{} }

func needsServerTime[C syncguard.ServerTimeCapabilities](g *syncguard.Guard[C]) syncguard.CapabilityInfo {
	return g.Capabilities()
}

func main() {
	g := syncguard.New(driver{})
	l, err := g.TryAcquire(context.Background(), "k")
	if err != nil {
		return
	}
	defer l.Close()
	fmt.Println(syncguard.FenceOf(l), needsServerTime(g).Name)
}
