// Command clienttime must NOT compile: its capability type is fenced but
// lacks syncguard.WithServerTime, so a function demanding
// ServerTimeCapabilities rejects its Guard. Built by
// capabilities_compile_test.go.
package main

import (
	"fmt"

	"github.com/syncguard/syncguard"
)

type caps struct {
	syncguard.WithFencing
}

func (caps) Name() string { return "clienttime" }

// driver wraps any Backend and declares caps.
type driver struct{ syncguard.Backend }

func (driver) Capabilities() caps { return caps{} }

func needsServerTime[C syncguard.ServerTimeCapabilities](g *syncguard.Guard[C]) syncguard.CapabilityInfo {
	return g.Capabilities()
}

func main() {
	g := syncguard.New(driver{})
	fmt.Println(needsServerTime(g).Name) // compile error: caps does not satisfy ServerTimeCapabilities
}
