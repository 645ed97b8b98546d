// Command fenced must compile: its capability type declares every
// guarantee, so FenceOf, the fencing primitives, NewFenced and functions
// constrained on ServerTime, FairHandoff and CrossProcess accept its
// Guard. Built by capabilities_compile_test.go.
package main

import (
	"context"
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

type caps struct {
	driver.WithFencing
	driver.WithServerTime
	driver.WithFairHandoff
	driver.WithCrossProcess
}

func (caps) Name() string { return "fenced" }

// fake wraps any LockStore and declares caps.
type fake struct{ driver.LockStore }

func (fake) Capabilities() caps { return caps{} }

func needsServerTime[C syncguard.ServerTime](g *syncguard.Guard[C]) string {
	return g.Capabilities().Name
}

func needsFairHandoff[C syncguard.FairHandoff](g *syncguard.Guard[C]) bool {
	return g.Capabilities().FairHandoff
}

func needsCrossProcess[C syncguard.CrossProcess](g *syncguard.Guard[C]) bool {
	return g.Capabilities().CrossProcess
}

func main() {
	g := syncguard.New(fake{})
	l, err := g.TryAcquire(context.Background(), "k")
	if err != nil {
		return
	}
	defer l.Close()
	fmt.Println(syncguard.FenceOf(l), needsServerTime(g), needsFairHandoff(g), needsCrossProcess(g))

	m, _ := syncguard.NewMutex(g, "k")
	fmt.Println(syncguard.FenceOf(m.Lease()))
	_, _ = syncguard.NewFencedWriter(g)
	_, _ = syncguard.NewOncePerKey[int](g)

	// Every fencing driver also gives the one type Guard[Fenced].
	var fg *syncguard.Guard[syncguard.Fenced] = syncguard.NewFenced(fake{})
	_, _ = syncguard.NewFencedWriter(fg)
	_, _ = syncguard.NewOncePerKey[string](fg)
}
