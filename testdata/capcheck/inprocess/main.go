// Command inprocess must NOT compile: its capability type (fenced, server
// time, as an in-process driver without a hand-off queue might declare)
// lacks driver.WithFairHandoff and driver.WithCrossProcess, so functions
// demanding FairHandoff or CrossProcess reject its Guard. Built by
// capabilities_compile_test.go.
package main

import (
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

type caps struct {
	driver.WithFencing
	driver.WithServerTime
}

func (caps) Name() string { return "inprocess" }

// fake wraps any LockStore and declares caps.
type fake struct{ driver.LockStore }

func (fake) Capabilities() caps { return caps{} }

func needsFairHandoff[C syncguard.FairHandoff](g *syncguard.Guard[C]) bool {
	return g.Capabilities().FairHandoff
}

func needsCrossProcess[C syncguard.CrossProcess](g *syncguard.Guard[C]) bool {
	return g.Capabilities().CrossProcess
}

func main() {
	g := syncguard.New(fake{})
	fmt.Println(needsFairHandoff(g))  // compile error: caps does not satisfy FairHandoff
	fmt.Println(needsCrossProcess(g)) // compile error: caps does not satisfy CrossProcess
}
