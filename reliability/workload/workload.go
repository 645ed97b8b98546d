// Package workload runs the reliability suite's client loops against any
// SyncGuard driver: history workers (acquire / fenced write / extend /
// release, recorded for the linearizability checker) and a mixed soak.
// It imports no driver, so the test of every driver (including the
// Firestore module) and the multi-process worker program share it.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/reliability/history"
)

// Config configures a history workload.
type Config struct {
	// Keys the clients contend on (few keys: high contention).
	Keys []string
	// Clients is the number of concurrent clients (goroutines); their ids
	// are ClientBase, ClientBase+1, …
	Clients    int
	ClientBase int
	// Duration bounds the run; Ops bounds the operations per client
	// (0: no bound).
	Duration time.Duration
	Ops      int
	// TTL of every acquisition (and extension).
	TTL time.Duration
	// OpTimeout is the context deadline of each call.
	OpTimeout time.Duration
	// StaleEvery: roughly one in StaleEvery acquisitions sleeps past its
	// TTL + tolerance before writing, as a paused holder would (0: never).
	StaleEvery int
	// Seed of the clients' random choices.
	Seed uint64
	// Pause, if set, is called between operations (a fault scheduler can
	// use it to hold clients); nil for none.
	Pause func()
	// NotApplied reports that a failed call certainly had no effect (the
	// request was never sent, or the server answered with an error
	// before running it); such calls are left out of the history instead
	// of being recorded with an unknown outcome. Nil: only connection
	// refusals and failed dials count (NeverSent).
	NotApplied func(error) bool
}

// NeverSent reports errors of calls that cannot have reached the server:
// a failed dial or a refused connection.
func NeverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// RecordName is the fenced record a key's holders write.
func RecordName(key string) string { return "rec/" + key }

// Counts summarises a run.
type Counts struct {
	mu     sync.Mutex
	Ops    int
	Errors map[string]int // by driver.Code name
}

func (c *Counts) add(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Ops++
	if err != nil {
		if c.Errors == nil {
			c.Errors = map[string]int{}
		}
		c.Errors[codeName(err)]++
	}
}

// Snapshot returns the counters.
func (c *Counts) Snapshot() (ops int, errs map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errs = map[string]int{}
	for k, v := range c.Errors {
		errs[k] = v
	}
	return c.Ops, errs
}

func codeName(err error) string {
	if code := driver.CodeOf(err); code != 0 {
		return code.String()
	}
	return "unmapped"
}

// FormatErrors formats error counts by code in a stable order.
func FormatErrors(errs map[string]int) string {
	if len(errs) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, errs[k])
	}
	return b.String()
}

// Run runs cfg.Clients clients against b until ctx ends, the duration
// passes or every client made cfg.Ops operations, recording every call in
// rec. Unmapped errors (not a *syncguard.LockError) and InvalidArgument
// errors are returned as problems: the workload's input is valid.
func Run(ctx context.Context, b driver.Backend, rec *history.Recorder, cfg Config) (*Counts, []string) {
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 2 * time.Second
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Second
	}
	if cfg.NotApplied == nil {
		cfg.NotApplied = NeverSent
	}
	counts := &Counts{}
	rep := newReporter(counts)
	runClients(ctx, cfg.Clients, cfg.ClientBase, cfg.Seed, cfg.Ops, cfg.Duration, cfg.Pause, func(id int, rng *rand.Rand) func(context.Context) {
		return (&client{id: id, b: b, rec: rec, cfg: cfg, rng: rng, rep: rep}).round
	})
	return counts, rep.list()
}

type client struct {
	id  int
	b   driver.Backend
	rec *history.Recorder
	cfg Config
	rng *rand.Rand
	seq int
	rep *reporter
}

func (c *client) check(op string, err error) { c.rep.check(c.id, op, err) }

// failed records a failed mutation: unknown outcome, unless it certainly
// had no effect.
func (c *client) failed(in history.Input, err error, call, ret int64) {
	if c.cfg.NotApplied(err) {
		return
	}
	c.rec.Add(c.id, in, history.Output{Unknown: true, Err: codeName(err)}, call, ret)
}

func (c *client) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.OpTimeout)
}

// round: acquire a random key; as holder write, maybe read, maybe extend,
// maybe write again, then release (or let it expire).
func (c *client) round(ctx context.Context) {
	key := c.cfg.Keys[c.rng.IntN(len(c.cfg.Keys))]
	lockID, fence, ok := c.acquire(ctx, key)
	if !ok {
		if c.rng.IntN(2) == 0 {
			c.get(ctx, key)
		}
		sleep(ctx, time.Duration(2+c.rng.IntN(15))*time.Millisecond)
		return
	}
	if c.cfg.StaleEvery > 0 && c.rng.IntN(c.cfg.StaleEvery) == 0 {
		// A paused holder: by the time it writes, its lease is gone and
		// another client may have written with a newer fence.
		sleep(ctx, c.cfg.TTL+driver.Tolerance+100*time.Millisecond)
	}
	c.put(ctx, key, fence)
	if c.rng.IntN(3) == 0 {
		c.get(ctx, key)
	}
	if c.rng.IntN(3) == 0 {
		c.extend(ctx, key, lockID)
		c.put(ctx, key, fence)
	}
	if c.rng.IntN(30) == 0 {
		return // leave it to expire
	}
	c.release(ctx, key, lockID)
}

func (c *client) acquire(ctx context.Context, key string) (string, syncguard.Fence, bool) {
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	in := history.Input{Kind: history.Acquire, Key: key, TTLMs: c.cfg.TTL.Milliseconds()}
	call := history.Now()
	r, err := c.b.Acquire(octx, key, c.cfg.TTL)
	ret := history.Now()
	c.check("acquire", err)
	if err != nil {
		c.failed(in, err, call, ret)
		return "", 0, false
	}
	c.rec.Add(c.id, in, history.Output{OK: r.Acquired, LockID: r.LockID, Fence: uint64(r.Fence), ExpMs: r.ExpiresAtMs}, call, ret)
	return r.LockID, r.Fence, r.Acquired
}

func (c *client) release(ctx context.Context, key, lockID string) {
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	in := history.Input{Kind: history.Release, Key: key, LockID: lockID}
	call := history.Now()
	r, err := c.b.Release(octx, "", lockID)
	ret := history.Now()
	c.check("release", err)
	if err != nil {
		c.failed(in, err, call, ret)
		return
	}
	c.rec.Add(c.id, in, history.Output{OK: r.OK}, call, ret)
}

func (c *client) extend(ctx context.Context, key, lockID string) {
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	in := history.Input{Kind: history.Extend, Key: key, LockID: lockID, TTLMs: c.cfg.TTL.Milliseconds()}
	call := history.Now()
	r, err := c.b.Extend(octx, "", lockID, c.cfg.TTL)
	ret := history.Now()
	c.check("extend", err)
	if err != nil {
		c.failed(in, err, call, ret)
		return
	}
	c.rec.Add(c.id, in, history.Output{OK: r.OK, ExpMs: r.ExpiresAtMs}, call, ret)
}

func (c *client) put(ctx context.Context, key string, fence syncguard.Fence) {
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	c.seq++
	val := fmt.Sprintf("c%d-%d", c.id, c.seq)
	in := history.Input{Kind: history.Put, Key: key, Fence: uint64(fence), Value: val}
	call := history.Now()
	r, err := c.b.PutRecord(octx, RecordName(key), fence, []byte(val), 0)
	ret := history.Now()
	c.check("put", err)
	if err != nil {
		c.failed(in, err, call, ret)
		return
	}
	c.rec.Add(c.id, in, history.Output{OK: r.Stored, Fence: uint64(r.Fence)}, call, ret)
}

func (c *client) get(ctx context.Context, key string) {
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	in := history.Input{Kind: history.Get, Key: key}
	call := history.Now()
	r, err := c.b.GetRecord(octx, RecordName(key))
	ret := history.Now()
	c.check("get", err)
	if err != nil {
		// A read that failed changes nothing; it is left out.
		return
	}
	out := history.Output{OK: r != nil}
	if r != nil {
		out.Value, out.Fence = string(r.Value), uint64(r.Fence)
	}
	c.rec.Add(c.id, in, out, call, ret)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SoakConfig configures a soak.
type SoakConfig struct {
	Duration time.Duration
	Workers  int
	Keys     int
	// Prefix of the soak's keys.
	Prefix string
}

// SoakReport is the outcome of a soak.
type SoakReport struct {
	Ops              int
	Errors           map[string]int
	CriticalSections int
	RateCalls        int
	// Violations: overlapping holders, non-increasing fences, refused
	// writes of a live holder, records read back wrong.
	Violations []string
}

// Soak runs a mixed workload (exclusive sections with fenced writes and
// read-back, extends, lookups, GCRA rate calls) for cfg.Duration and checks
// mutual exclusion in process: at most one worker is inside a key's section
// at a time and each section's fence exceeds the previous section's.
func Soak(ctx context.Context, b driver.Backend, cfg SoakConfig) SoakReport {
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	if cfg.Keys == 0 {
		cfg.Keys = 4
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	type keyState struct {
		inside atomic.Int32
		mu     sync.Mutex
		last   syncguard.Fence
	}
	states := make([]*keyState, cfg.Keys)
	for i := range states {
		states[i] = &keyState{}
	}
	var (
		counts   Counts
		sections atomic.Int64
		rate     atomic.Int64
		vmu      sync.Mutex
		viol     []string
	)
	violation := func(format string, args ...any) {
		vmu.Lock()
		if len(viol) < 50 {
			viol = append(viol, fmt.Sprintf(format, args...))
		}
		vmu.Unlock()
	}
	const ttl = 10 * time.Second
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				ki := rng.IntN(cfg.Keys)
				key := fmt.Sprintf("%s:k%d", cfg.Prefix, ki)
				octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
				switch rng.IntN(10) {
				case 0:
					_, err := b.AllowN(octx, key, syncguard.RateLimit{Limit: 100, Period: time.Second, Burst: 10}, 1)
					counts.add(err)
					rate.Add(1)
				case 1:
					_, err := b.IsLocked(octx, key)
					counts.add(err)
				case 2:
					_, err := b.LookupByKey(octx, key)
					counts.add(err)
				default:
					r, err := b.Acquire(octx, key, ttl)
					counts.add(err)
					if err != nil || !r.Acquired {
						ocancel()
						sleep(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
						continue
					}
					st := states[ki]
					if n := st.inside.Add(1); n != 1 {
						violation("key %s: %d holders at once (fence %v)", key, n, r.Fence)
					}
					st.mu.Lock()
					if r.Fence <= st.last {
						violation("key %s: fence %v after %v", key, r.Fence, st.last)
					}
					st.last = r.Fence
					st.mu.Unlock()
					sections.Add(1)
					val := []byte(fmt.Sprintf("w%d-%v", w, r.Fence))
					pr, err := b.PutRecord(octx, RecordName(key), r.Fence, val, 0)
					counts.add(err)
					if err == nil && !pr.Stored {
						violation("key %s: live holder's write with fence %v refused (stored %v)", key, r.Fence, pr.Fence)
					}
					if err == nil {
						got, err := b.GetRecord(octx, RecordName(key))
						counts.add(err)
						if err == nil && (got == nil || string(got.Value) != string(val) || got.Fence != r.Fence) {
							violation("key %s: read back %+v after writing %q with fence %v", key, got, val, r.Fence)
						}
					}
					if rng.IntN(4) == 0 {
						_, err := b.Extend(octx, "", r.LockID, ttl)
						counts.add(err)
					}
					st.inside.Add(-1)
					rr, err := b.Release(octx, "", r.LockID)
					counts.add(err)
					if err == nil && !rr.OK {
						violation("key %s: release of a live lock failed (%s)", key, rr.Detail)
					}
				}
				ocancel()
			}
		})
	}
	wg.Wait()
	ops, errs := counts.Snapshot()
	return SoakReport{Ops: ops, Errors: errs, CriticalSections: int(sections.Load()), RateCalls: int(rate.Load()), Violations: viol}
}
