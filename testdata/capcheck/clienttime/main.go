// Command clienttime must NOT compile: its capability type is fenced but
// lacks driver.WithServerTime, so a function demanding ServerTime rejects
// its Guard. Built by capabilities_compile_test.go.
package main

import (
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

type caps struct {
	driver.WithFencing
	driver.WithCrossProcess
}

func (caps) Name() string { return "clienttime" }

// fake wraps any LockStore and declares caps.
type fake struct{ driver.LockStore }

func (fake) Capabilities() caps { return caps{} }

func needsServerTime[C syncguard.ServerTime](g *syncguard.Guard[C]) string {
	return g.Capabilities().Name
}

func main() {
	g := syncguard.New(fake{})
	fmt.Println(needsServerTime(g)) // compile error: caps does not satisfy ServerTime
}
