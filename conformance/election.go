package conformance

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/election"
)

// Leader election over the driver (package election): E01–E03.

// fencedRecords is a fencing driver under test as a
// driver.Driver[syncguard.Fenced] with its record store, for election.New.
type fencedRecords[C driver.Capabilities] struct {
	driver.Driver[C]
	driver.RecordStore
}

func (f fencedRecords[C]) Capabilities() syncguard.Fenced {
	return any(f.Driver.Capabilities()).(syncguard.Fenced)
}

// election returns an election of key over a new driver value of the
// harness (a separate client, as another process would have).
func (c *tc[C]) election(key string, opts ...election.Option) *election.Election[syncguard.Fenced] {
	c.Helper()
	d := c.h.Driver()
	rs, _ := any(d).(driver.RecordStore)
	e, err := election.New(syncguard.New[syncguard.Fenced](fencedRecords[C]{d, rs}), key, opts...)
	if err != nil {
		c.Fatalf("election.New: %v", err)
	}
	return e
}

// E01: candidates on separate driver values take turns: never two leaders
// at once, and every term is greater than the one before.
func e01[C driver.Capabilities](c *tc[C]) {
	k := c.key("election")
	var leading atomic.Int32
	var mu sync.Mutex
	var terms []syncguard.Fence
	gather(4, func(i int) {
		e := c.election(k)
		for range 3 {
			l, err := e.Campaign(c.ctx, []byte{byte('a' + i)}, syncguard.TTL(30*time.Second), syncguard.RetryDelay(5*time.Millisecond))
			if err != nil {
				c.Errorf("Campaign: %v", err)
				return
			}
			if n := leading.Add(1); n != 1 {
				c.Errorf("%d leaders at once", n)
			}
			mu.Lock()
			terms = append(terms, syncguard.FenceOf(l))
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			leading.Add(-1)
			if err := e.Resign(c.ctx, l); err != nil {
				c.Errorf("Resign: %v", err)
			}
		}
	})
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			c.Errorf("term %v after %v; want strictly greater", terms[i], terms[i-1])
		}
	}
	if len(terms) != 12 {
		c.Errorf("%d terms; want 12", len(terms))
	}
}

// E02: an observer sees the current leader, then every later leader with
// its value, in term order, even when several come and go between two of
// its reads.
func e02[C driver.Capabilities](c *tc[C]) {
	k := c.key("election")
	e := c.election(k)
	first, err := e.Campaign(c.ctx, []byte("v0"))
	if err != nil {
		c.Fatalf("Campaign: %v", err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	ch := c.election(k, election.WithPollInterval(300*time.Millisecond)).Observe(ctx)
	want := []election.Leader{{Term: syncguard.FenceOf(first), Value: []byte("v0")}}
	if err := e.Resign(c.ctx, first); err != nil {
		c.Fatalf("Resign: %v", err)
	}
	for i := 1; i <= 5; i++ {
		v := []byte{'v', byte('0' + i)}
		l, err := e.Campaign(c.ctx, v)
		if err != nil {
			c.Fatalf("Campaign: %v", err)
		}
		want = append(want, election.Leader{Term: syncguard.FenceOf(l), Value: v})
		if err := e.Resign(c.ctx, l); err != nil {
			c.Fatalf("Resign: %v", err)
		}
	}
	var got []election.Leader
	timeout := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case l := <-ch:
			got = append(got, l)
		case <-timeout:
			c.Fatalf("observed %d of %d leaders: %+v", len(got), len(want), got)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		c.Errorf("observed leaders (-want +got):\n%s", diff)
	}
}

// E03: a leader that stops (no release, no extension) is replaced once
// its TTL and the tolerance have passed, with a greater term, and learns
// it lost before the new leader is elected.
func e03[C driver.Capabilities](c *tc[C]) {
	k := c.key("election")
	old := c.election(k)
	a, err := old.Campaign(c.ctx, []byte("old"), syncguard.TTL(c.tm.Short), syncguard.AutoExtend(false))
	if err != nil {
		c.Fatalf("Campaign: %v", err)
	}
	start := time.Now()
	b, err := c.election(k).Campaign(c.ctx, []byte("new"), syncguard.RetryDelay(50*time.Millisecond))
	if err != nil {
		c.Fatalf("second Campaign: %v", err)
	}
	defer b.Close()
	took := time.Since(start)
	if took < c.tm.Short+driver.Tolerance-clockSkew {
		c.Errorf("new leader after %v; want no earlier than TTL %v + tolerance %v", took, c.tm.Short, driver.Tolerance)
	}
	if syncguard.FenceOf(b) <= syncguard.FenceOf(a) {
		c.Errorf("term %v after %v; want greater", syncguard.FenceOf(b), syncguard.FenceOf(a))
	}
	if ok, _ := a.Extend(c.ctx, time.Minute); ok {
		c.Error("the old leader extended its lease after a new leader was elected")
	}
	l, err := old.Leader(c.ctx)
	if err != nil || string(l.Value) != "new" || l.Term != syncguard.FenceOf(b) {
		c.Errorf("Leader = %+v, %v; want the new leader", l, err)
	}
}
