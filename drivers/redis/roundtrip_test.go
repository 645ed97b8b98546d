package redis

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// countingClient counts the commands a driver sends, by name.
type countingClient struct {
	rueidis.Client
	mu   sync.Mutex
	cmds map[string]int
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.mu.Lock()
	c.cmds[cmd.Commands()[0]]++
	c.mu.Unlock()
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.cmds
	c.cmds = map[string]int{}
	return m
}

// commandstats reads the server's call counts of EVAL and EVALSHA.
func commandstats(t *testing.T, c rueidis.Client) (eval, evalsha int) {
	t.Helper()
	s, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) int {
		m := regexp.MustCompile(`cmdstat_` + name + `:calls=(\d+)`).FindStringSubmatch(s)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return get("eval"), get("evalsha")
}

// TestOneRoundTripPerOperation: after SCRIPT FLUSH, each script is loaded
// once (one NOSCRIPT → EVAL fallback per script), and from then on every
// operation is exactly one command (EVALSHA, or GET/DEL for the plain ones),
// as seen by the client and by the server's command statistics.
//
// Not parallel: it flushes the script cache and reads global counters, so
// it runs before the package's parallel tests.
func TestOneRoundTripPerOperation(t *testing.T) {
	base := singleClient(t)
	cc := &countingClient{Client: base, cmds: map[string]int{}}
	d := newDriver(t, cc)
	ctx := context.Background()
	if err := base.Do(ctx, base.B().ScriptFlush().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	lim := driver.RateLimit{Limit: 10, Period: time.Second, Burst: 10}
	round := func() {
		t.Helper()
		r, err := d.Acquire(ctx, "rt", time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		p, err := d.AcquirePermit(ctx, "rt", 2, time.Minute)
		if err != nil || !p.Acquired {
			t.Fatalf("AcquirePermit = %+v, %v", p, err)
		}
		steps := []func() error{
			func() error { _, err := d.Extend(ctx, "", r.LockID, time.Minute); return err },
			func() error { _, err := d.IsLocked(ctx, "rt"); return err },
			func() error { _, err := d.LookupByKey(ctx, "rt"); return err },
			func() error { _, err := d.LookupByID(ctx, r.LockID); return err },
			func() error { _, err := d.Release(ctx, "", r.LockID); return err },
			func() error { _, err := d.PutRecord(ctx, "rt", r.Fence, []byte("v"), 0); return err },
			func() error { _, err := d.GetRecord(ctx, "rt"); return err },
			func() error { _, err := d.DeleteRecord(ctx, "rt", r.Fence); return err },
			func() error { _, err := d.AllowN(ctx, "rt", lim, 1); return err },
			func() error { return d.ResetRate(ctx, "rt") },
			func() error { _, err := d.ExtendPermit(ctx, "rt", p.LockID, time.Minute); return err },
			func() error { _, err := d.Permits(ctx, "rt"); return err },
			func() error { _, err := d.ReleasePermit(ctx, "rt", p.LockID); return err },
		}
		for _, f := range steps {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 13 scripts (4 of them the permits'); GET (record) and DEL (rate reset) are plain commands.
	eval0, sha0 := commandstats(t, base)
	round()
	first := cc.take()
	eval1, sha1 := commandstats(t, base)
	// First round: each of the 13 scripts is tried by SHA, refused, then
	// sent once with EVAL.
	if diff := cmp.Diff(map[string]int{"EVALSHA": 13, "EVAL": 13, "GET": 1, "DEL": 1}, first); diff != "" {
		t.Errorf("first round commands (-want +got):\n%s", diff)
	}
	for range 3 {
		round()
	}
	later := cc.take()
	eval2, sha2 := commandstats(t, base)
	if diff := cmp.Diff(map[string]int{"EVALSHA": 39, "GET": 3, "DEL": 3}, later); diff != "" {
		t.Errorf("later rounds (-want +got): scripts must run by SHA only, one command per operation\n%s", diff)
	}
	// The server saw the same (other clients may add to the counts only if
	// another test ran concurrently, which this sequential test excludes).
	if eval1-eval0 != 13 || eval2 != eval1 {
		t.Errorf("server EVAL calls: +%d in the first round, +%d later; want +13, +0", eval1-eval0, eval2-eval1)
	}
	if sha2-sha1 != 39 {
		t.Errorf("server EVALSHA calls in later rounds: +%d; want +39", sha2-sha1)
	}
	_ = sha0
}
