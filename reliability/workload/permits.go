package workload

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/reliability/history"
)

// PermitConfig configures a permit workload.
type PermitConfig struct {
	// Keys the clients share (few keys: full semaphores).
	Keys []string
	// Clients is the number of concurrent clients (goroutines); their ids
	// are ClientBase, ClientBase+1, …
	Clients    int
	ClientBase int
	// Duration bounds the run; Ops bounds the rounds per client (0: no
	// bound).
	Duration time.Duration
	Ops      int
	// Limits are the permit counts a client picks from, one per
	// acquisition (mixing counts exercises "the smallest limit in use
	// wins"); default {3}.
	Limits []int
	// TTL of every permit (and extension).
	TTL time.Duration
	// OpTimeout is the context deadline of each call.
	OpTimeout time.Duration
	// AbandonEvery: roughly one in AbandonEvery permits is left to expire
	// (0: never). StaleEvery: roughly one in StaleEvery holders sleeps
	// past TTL + tolerance, then tries to extend and release the expired
	// permit (0: never).
	AbandonEvery, StaleEvery int
	// Seed of the clients' random choices.
	Seed uint64
	// NotApplied is as for Config (nil: NeverSent).
	NotApplied func(error) bool
}

// RunPermits runs cfg.Clients clients against ps until ctx ends, the
// duration passes or every client made cfg.Ops rounds, recording every
// permit call in rec (see history.PermitModel). A round takes a permit of
// a random key with a random limit, holds it briefly, maybe extends it,
// and releases it or leaves it to expire. Unmapped, InvalidArgument and
// Internal errors are returned as problems.
func RunPermits(ctx context.Context, ps driver.PermitStore, rec *history.Recorder, cfg PermitConfig) (*Counts, []string) {
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = 2 * time.Second
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Second
	}
	if len(cfg.Limits) == 0 {
		cfg.Limits = []int{3}
	}
	if cfg.NotApplied == nil {
		cfg.NotApplied = NeverSent
	}
	counts := &Counts{}
	rep := newReporter(counts)
	runClients(ctx, cfg.Clients, cfg.ClientBase, cfg.Seed, cfg.Ops, cfg.Duration, nil, func(id int, rng *rand.Rand) func(context.Context) {
		return (&permitClient{id: id, ps: ps, rec: rec, cfg: cfg, rng: rng, rep: rep}).round
	})
	return counts, rep.list()
}

type permitClient struct {
	id  int
	ps  driver.PermitStore
	rec *history.Recorder
	cfg PermitConfig
	rng *rand.Rand
	rep *reporter
}

func (c *permitClient) round(ctx context.Context) {
	key := c.cfg.Keys[c.rng.IntN(len(c.cfg.Keys))]
	limit := c.cfg.Limits[c.rng.IntN(len(c.cfg.Limits))]
	id, ok := c.acquire(ctx, key, limit)
	if !ok {
		sleep(ctx, time.Duration(5+c.rng.IntN(20))*time.Millisecond)
		return
	}
	if c.cfg.StaleEvery > 0 && c.rng.IntN(c.cfg.StaleEvery) == 0 {
		// A paused holder: its permit is gone when it wakes up.
		sleep(ctx, c.cfg.TTL+driver.Tolerance+100*time.Millisecond)
		c.extend(ctx, key, id)
		c.release(ctx, key, id)
		return
	}
	sleep(ctx, time.Duration(c.rng.IntN(40))*time.Millisecond)
	if c.rng.IntN(3) == 0 {
		c.extend(ctx, key, id)
		sleep(ctx, time.Duration(c.rng.IntN(40))*time.Millisecond)
	}
	if c.cfg.AbandonEvery > 0 && c.rng.IntN(c.cfg.AbandonEvery) == 0 {
		return // left to expire
	}
	c.release(ctx, key, id)
}

func (c *permitClient) check(op string, err error) { c.rep.check(c.id, op, err) }

// done records a call: unknown outcome if it failed, unless it certainly
// had no effect.
func (c *permitClient) done(in history.Input, out history.Output, err error, call, ret int64) {
	if err != nil {
		if c.cfg.NotApplied(err) {
			return
		}
		out = history.Output{Unknown: true, Err: codeName(err)}
	}
	c.rec.Add(c.id, in, out, call, ret)
}

func (c *permitClient) acquire(ctx context.Context, key string, limit int) (string, bool) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	in := history.Input{Kind: history.Acquire, Key: key, Limit: limit, TTLMs: c.cfg.TTL.Milliseconds()}
	call := history.Now()
	r, err := c.ps.AcquirePermit(octx, key, limit, c.cfg.TTL)
	ret := history.Now()
	c.check("acquire permit", err)
	c.done(in, history.Output{OK: r.Acquired, LockID: r.LockID, Fence: uint64(r.Fence), ExpMs: r.ExpiresAtMs}, err, call, ret)
	return r.LockID, err == nil && r.Acquired
}

func (c *permitClient) release(ctx context.Context, key, id string) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	in := history.Input{Kind: history.Release, Key: key, LockID: id}
	call := history.Now()
	r, err := c.ps.ReleasePermit(octx, key, id)
	ret := history.Now()
	c.check("release permit", err)
	c.done(in, history.Output{OK: r.OK}, err, call, ret)
}

func (c *permitClient) extend(ctx context.Context, key, id string) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpTimeout)
	defer cancel()
	in := history.Input{Kind: history.Extend, Key: key, LockID: id, TTLMs: c.cfg.TTL.Milliseconds()}
	call := history.Now()
	r, err := c.ps.ExtendPermit(octx, key, id, c.cfg.TTL)
	ret := history.Now()
	c.check("extend permit", err)
	c.done(in, history.Output{OK: r.OK, ExpMs: r.ExpiresAtMs}, err, call, ret)
}
