package zapobserver_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/zapobserver"
)

// TestZapCallerIsTheUsersCode: with zap.AddCaller, each event's caller is
// the line of user code that called into SyncGuard (here: this file), on
// every path — Guard.TryAcquire, Lease.Release, Guard.Do — whatever the
// depth of the library's frames; never zapobserver.go.
func TestZapCallerIsTheUsersCode(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	g := syncguard.New(memory.New(), syncguard.WithObserver(zapobserver.New(zap.New(core, zap.AddCaller()))))
	ctx := context.Background()

	_, file, line, _ := runtime.Caller(0)
	l, err := g.TryAcquire(ctx, "zap:caller") // line+1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Release(ctx); err != nil { // line+5
		t.Fatal(err)
	}
	err = g.Do(ctx, "zap:caller", func(context.Context, *syncguard.Lease[memory.Capabilities]) error { return nil }) // line+8
	if err != nil {
		t.Fatal(err)
	}

	type site struct {
		Event string
		File  string
		Line  int
	}
	var got []site
	for _, e := range logs.All() {
		if !e.Caller.Defined {
			t.Fatalf("%s: caller not defined", e.Message)
		}
		got = append(got, site{e.Message, filepath.Base(e.Caller.File), e.Caller.Line})
	}
	base := filepath.Base(file)
	want := []site{
		{"syncguard acquire", base, line + 1},
		{"syncguard release", base, line + 5},
		{"syncguard acquire", base, line + 8},
		{"syncguard release", base, line + 8},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("callers (-want +got):\n%s", diff)
	}
}

// TestZapCallerOfHeartbeat: an extend by a lease's heartbeat (a goroutine
// of the library, with no user frame) names a library function, not
// zapobserver.go; and a logger without AddCaller gets no caller.
func TestZapCallerOfHeartbeat(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	g := syncguard.New(memory.New(), syncguard.WithObserver(zapobserver.New(zap.New(core, zap.AddCaller()))))
	ctx := context.Background()
	l, err := g.Acquire(ctx, "zap:heartbeat", syncguard.TTL(30*time.Millisecond), syncguard.AutoExtend(true))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(logs.FilterMessage("syncguard extend").All()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	l.Close()
	ext := logs.FilterMessage("syncguard extend").All()
	if len(ext) == 0 {
		t.Fatal("no extend event from the heartbeat")
	}
	if c := ext[0].Caller; !c.Defined || filepath.Base(c.File) == "zapobserver.go" || c.Function == "" {
		t.Errorf("heartbeat extend caller = %+v; want a library function, not the adapter", c)
	}

	core2, logs2 := observer.New(zap.DebugLevel)
	g2 := syncguard.New(memory.New(), syncguard.WithObserver(zapobserver.New(zap.New(core2))))
	l2, err := g2.TryAcquire(ctx, "zap:nocaller")
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	for _, e := range logs2.All() {
		if e.Caller.Defined {
			t.Errorf("%s: caller %v defined on a logger without AddCaller", e.Message, e.Caller)
		}
	}
}
