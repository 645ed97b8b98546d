package election_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/election"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild() // a leader process of TestLeaderKilled; never returns
	}
	goleak.VerifyTestMain(m)
}

func newElection(t *testing.T, d *memory.Driver, opts ...election.Option) *election.Election[memory.Capabilities] {
	t.Helper()
	e, err := election.New(syncguard.New(d), "jobs/scheduler", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCampaignLeaderResign(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	e := newElection(t, d)
	if _, err := e.Leader(ctx); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("Leader before any campaign: %v; want ErrNoLeader", err)
	}
	a, err := e.Campaign(ctx, []byte("10.0.0.1:8080"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := election.Leader{Term: syncguard.FenceOf(a), Value: []byte("10.0.0.1:8080")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Leader (-want +got):\n%s", diff)
	}

	// A second candidate waits until the first resigns.
	elected := make(chan *syncguard.Lease[memory.Capabilities])
	go func() {
		b, err := e.Campaign(ctx, []byte("10.0.0.2:8080"))
		if err != nil {
			t.Error(err)
		}
		elected <- b
	}()
	select {
	case <-elected:
		t.Fatal("second candidate elected while the first leads")
	case <-time.After(100 * time.Millisecond):
	}
	if err := e.Resign(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := <-elected
	defer b.Close()
	if syncguard.FenceOf(b) <= syncguard.FenceOf(a) {
		t.Errorf("term %v after %v; want greater", syncguard.FenceOf(b), syncguard.FenceOf(a))
	}
	got, err = e.Leader(ctx)
	if err != nil || string(got.Value) != "10.0.0.2:8080" || got.Term != syncguard.FenceOf(b) {
		t.Errorf("Leader = %+v, %v; want the second candidate", got, err)
	}
}

// TestNoTwoLeaders runs candidates that each lead briefly and resign:
// terms strictly increase and never overlap.
func TestNoTwoLeaders(t *testing.T) {
	ctx := t.Context()
	d := memory.New()
	var leading atomic.Int32
	var mu sync.Mutex
	var terms []syncguard.Fence
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			e := newElection(t, d)
			for range 5 {
				l, err := e.Campaign(ctx, []byte{byte(i)}, syncguard.RetryDelay(time.Millisecond))
				if err != nil {
					t.Error(err)
					return
				}
				if n := leading.Add(1); n != 1 {
					t.Errorf("%d leaders at once", n)
				}
				mu.Lock()
				terms = append(terms, syncguard.FenceOf(l))
				mu.Unlock()
				time.Sleep(time.Millisecond)
				leading.Add(-1)
				if err := e.Resign(ctx, l); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			t.Fatalf("term %v after %v", terms[i], terms[i-1])
		}
	}
	if len(terms) != 30 {
		t.Errorf("%d terms; want 30", len(terms))
	}
}

// TestObserveSeesEveryLeaderInOrder: an observer polling slower than
// leaders change still sees every term, in order.
func TestObserveSeesEveryLeaderInOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	d := memory.New()
	e := newElection(t, d, election.WithPollInterval(50*time.Millisecond))
	first, err := e.Campaign(ctx, []byte("v0"))
	if err != nil {
		t.Fatal(err)
	}
	ch := e.Observe(ctx)
	want := []election.Leader{{Term: syncguard.FenceOf(first), Value: []byte("v0")}}
	if got := <-ch; !cmp.Equal(got, want[0]) {
		t.Fatalf("first observed %+v; want %+v", got, want[0])
	}
	if err := e.Resign(ctx, first); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ { // ten terms within one poll interval
		l, err := e.Campaign(ctx, []byte{'v', byte('0' + i)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, election.Leader{Term: syncguard.FenceOf(l), Value: []byte{'v', byte('0' + i)}})
		if err := e.Resign(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var got []election.Leader
	for len(got) < 10 {
		got = append(got, <-ch)
	}
	if diff := cmp.Diff(want[1:], got); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	cancel()
	for range ch { // closed when ctx ends
	}
}

// TestLostLeaderLearnsFirst: a leader whose lease was taken over (its TTL
// ran out while it could not extend) sees Lost before the next leader is
// elected.
func TestLostLeaderLearnsFirst(t *testing.T) {
	ctx := t.Context()
	clk := &clock{t: time.Now()}
	d := memory.New(memory.WithClock(clk.now))
	e := newElection(t, d)
	a, err := e.Campaign(ctx, nil, syncguard.TTL(time.Second), syncguard.AutoExtend(false))
	if err != nil {
		t.Fatal(err)
	}
	clk.add(2500 * time.Millisecond) // past TTL and tolerance
	if ok, _ := a.Extend(ctx, time.Second); ok {
		t.Fatal("Extend of an expired leadership succeeded")
	}
	select {
	case <-a.Lost():
	default:
		t.Fatal("Lost not closed after a failed extension")
	}
	b, err := e.Campaign(ctx, []byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if syncguard.FenceOf(b) <= syncguard.FenceOf(a) {
		t.Errorf("term %v after %v", syncguard.FenceOf(b), syncguard.FenceOf(a))
	}
}

func TestInvalidInput(t *testing.T) {
	d := memory.New()
	g := syncguard.New(d)
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"nil guard", func() error { _, err := election.New[memory.Capabilities](nil, "k"); return err }},
		{"empty key", func() error { _, err := election.New(g, ""); return err }},
		{"short poll", func() error { _, err := election.New(g, "k", election.WithPollInterval(time.Millisecond)); return err }},
		{"value too long", func() error {
			e, _ := election.New(g, "k")
			_, err := e.Campaign(t.Context(), make([]byte, election.MaxValueBytes+1))
			return err
		}},
		{"resign nil", func() error { e, _ := election.New(g, "k"); return e.Resign(t.Context(), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := driver.CodeOf(tc.err()); c != driver.InvalidArgument {
				t.Errorf("code %v; want InvalidArgument", c)
			}
		})
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestObserveStartsNow: an observer started when nobody leads does not
// replay past terms; it delivers the next leader.
func TestObserveStartsNow(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e := newElection(t, memory.New(), election.WithPollInterval(10*time.Millisecond))
	for range 3 {
		l, err := e.Campaign(ctx, []byte("past"))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Resign(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	ch := e.Observe(ctx)
	l, err := e.Campaign(ctx, []byte("next"))
	if err != nil {
		t.Fatal(err)
	}
	want := election.Leader{Term: syncguard.FenceOf(l), Value: []byte("next")}
	if got := <-ch; !cmp.Equal(got, want) {
		t.Errorf("first observed %+v; want %+v", got, want)
	}
}
