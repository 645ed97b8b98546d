package redis

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCancelledCallsDoNotFailOthers: a call whose context ends while its
// client redials does not fail the calls of other callers on that client.
// rueidis dials a broken connection again with the context of the call
// that needs it first and hands the dial's error to every call waiting for
// it, so forwarding callers' contexts to rueidis made a
// context.Background call fail with "context canceled".
func TestCancelledCallsDoNotFailOthers(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	admin := singleClient(t)
	d := newDriver(t, c)
	bg := context.Background()
	var calls, failures int
	var first error
	for n := range 200 {
		id, err := c.Do(bg, c.B().ClientId().Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.Do(bg, admin.B().ClientKill().Id(id).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		// A request on the killed connection fails and makes the client
		// drop it (a pipe without a reader notices only then).
		_ = c.Do(bg, c.B().Ping().Build()).Error()
		// The next calls redial: one is cancelled while dialling, the
		// other never gives up.
		ctx, cancel := context.WithCancel(bg)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = d.Acquire(ctx, "cancel-churn", time.Second)
		}()
		time.AfterFunc(time.Duration(n%50)*10*time.Microsecond, cancel)
		calls++
		if _, err := d.IsLocked(bg, "cancel-churn"); err != nil {
			failures++
			if first == nil {
				first = err
			}
		}
		wg.Wait()
		cancel()
	}
	if failures > 0 {
		t.Fatalf("%d of %d context.Background calls failed; first: %v", failures, calls, first)
	}
}

// TestAbandonedCallEnds: a request whose caller gave up ends within
// abandonGrace even when the client would retry it for as long as the
// server stays unreachable (a read-only GET, every reply lost).
func TestAbandonedCallEnds(t *testing.T) {
	// Not parallel: it counts the process's call goroutines, so it runs
	// before the package's parallel tests.
	fp, d, _ := proxied(t)
	d.abandonGrace = 200 * time.Millisecond
	if _, err := d.GetRecord(context.Background(), "abandoned"); err != nil {
		t.Fatal(err) // connected
	}
	fp.reset(t)
	defer fp.heal()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := d.GetRecord(ctx, "abandoned"); err == nil {
		t.Fatal("GetRecord with every reply lost succeeded")
	}
	deadline := time.Now().Add(3 * time.Second)
	for callsInFlight() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d abandoned calls still running 3s after their caller gave up; want none after abandonGrace (200ms)", callsInFlight())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// callsInFlight counts the goroutines running a driver request (exec.go's
// fly) in this process.
func callsInFlight() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "drivers/redis.(*Driver).fly(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
