package workload

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/election"
	"github.com/syncguard/syncguard/reliability/history"
)

// ElectionDriver is what the election workload needs of a driver: a
// fencing driver with the whole Backend.
type ElectionDriver[C syncguard.Fenced] interface {
	driver.Driver[C]
	driver.Backend
}

// ElectionConfig configures an election workload.
type ElectionConfig struct {
	// Key is the election key (normalised).
	Key string
	// Candidates campaign, resign and campaign again; Observers watch
	// with Election.Observe. Client ids are ClientBase+i for candidate i
	// and ClientBase+100+j for observer j.
	Candidates, Observers int
	ClientBase            int
	// Duration of the campaigning; observers stop a few polls later.
	Duration time.Duration
	// TTL of a leadership lease.
	TTL time.Duration
	// MaxHold: a leader resigns after a random time up to MaxHold
	// (auto-extending its lease meanwhile).
	MaxHold time.Duration
	// LapseEvery: roughly one in LapseEvery leaders campaigns without
	// auto-extend and never resigns, so its lease lapses (0: never).
	LapseEvery int
	// Poll is the observers' poll interval; RetryDelay the candidates'
	// delay between acquisition attempts.
	Poll, RetryDelay time.Duration
	// ReleaseTimeout bounds a resignation.
	ReleaseTimeout time.Duration
	Seed           uint64
	// NotApplied is as for Config (nil: NeverSent).
	NotApplied func(error) bool
}

// ElectionRun is the outcome of an election workload; the driver calls
// are in the Recorder.
type ElectionRun struct {
	Campaigns []history.Campaign
	Observed  [][]history.Observation
	// Calls counts the recorded driver calls and their errors;
	// CampaignErrors the errors of Campaign by code.
	Calls          *Counts
	CampaignErrors map[string]int
	// Lapsed counts the leaders that walked away (LapseEvery).
	Lapsed int
	// Problems are driver errors the workload does not expect (unmapped,
	// InvalidArgument, Internal).
	Problems []string
}

// RunElection runs cfg.Candidates candidates and cfg.Observers observers
// of the election cfg.Key, spread round-robin over drivers (all on one
// store), until ctx ends or the duration passes. Each candidate and
// observer has a Guard of its own over a recording driver that adds every
// Acquire, Release and Extend of the election key and every Put and Get of
// the election record to rec, with unknown outcomes as in Run. The
// recording driver offers no release watching or hand-off, so the Guards
// poll.
func RunElection[C syncguard.Fenced](ctx context.Context, drivers []ElectionDriver[C], rec *history.Recorder, cfg ElectionConfig) ElectionRun {
	if cfg.NotApplied == nil {
		cfg.NotApplied = NeverSent
	}
	if cfg.ReleaseTimeout == 0 {
		cfg.ReleaseTimeout = 2 * time.Second
	}
	run := ElectionRun{Calls: &Counts{}, CampaignErrors: map[string]int{}, Observed: make([][]history.Observation, cfg.Observers)}
	var mu sync.Mutex // guards run
	rep := newReporter(run.Calls)
	quiet := slog.New(slog.DiscardHandler)
	newElection := func(client int) *election.Election[C] {
		d := drivers[client%len(drivers)]
		rd := &recordingDriver[C]{d: d, rec: rec, client: cfg.ClientBase + client, notApplied: cfg.NotApplied, rep: rep}
		g := syncguard.New[C](rd, syncguard.WithLogger(quiet), syncguard.WithOnReleaseError(func(error, string, string) {}),
			syncguard.WithReleaseTimeout(cfg.ReleaseTimeout))
		e, err := election.New(g, cfg.Key, election.WithPollInterval(cfg.Poll))
		if err != nil {
			panic(err) // the configuration is the test's
		}
		return e
	}

	deadline := time.Now().Add(cfg.Duration)
	obsCtx, stopObservers := context.WithCancel(ctx)
	defer stopObservers()
	var obs sync.WaitGroup
	for j := range cfg.Observers {
		e := newElection(100 + j)
		ch := e.Observe(obsCtx)
		obs.Go(func() {
			var seq []history.Observation
			for l := range ch {
				seq = append(seq, history.Observation{Term: uint64(l.Term), Value: string(l.Value), At: history.Now()})
			}
			mu.Lock()
			run.Observed[j] = seq
			mu.Unlock()
		})
	}

	runCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var cands sync.WaitGroup
	for i := range cfg.Candidates {
		e := newElection(i)
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))
		cands.Go(func() {
			for attempt := 1; runCtx.Err() == nil; attempt++ {
				left := time.Until(deadline).Truncate(time.Millisecond)
				if left <= 0 {
					return
				}
				c := history.Campaign{Client: cfg.ClientBase + i, Value: fmt.Sprintf("c%d-%d", cfg.ClientBase+i, attempt)}
				lapse := cfg.LapseEvery > 0 && rng.IntN(cfg.LapseEvery) == 0
				opts := []syncguard.AcquireOption{
					syncguard.TTL(cfg.TTL), syncguard.RetryDelay(cfg.RetryDelay), syncguard.Backoff(syncguard.BackoffFixed),
					syncguard.MaxRetries(1 << 20), syncguard.Timeout(left),
				}
				if lapse {
					opts = append(opts, syncguard.AutoExtend(false))
				}
				c.Call = history.Now()
				l, err := e.Campaign(runCtx, []byte(c.Value), opts...)
				c.Return = history.Now()
				if err == nil {
					c.Term = uint64(syncguard.FenceOf(l))
				}
				mu.Lock()
				run.Campaigns = append(run.Campaigns, c)
				if err != nil {
					run.CampaignErrors[codeName(err)]++
				}
				mu.Unlock()
				if err != nil {
					sleep(runCtx, 10*time.Millisecond)
					continue
				}
				if lapse {
					mu.Lock()
					run.Lapsed++
					mu.Unlock()
					continue // no heartbeat, no resignation: the lease lapses
				}
				hold := time.NewTimer(time.Duration(10+rng.Int64N(max(cfg.MaxHold.Milliseconds()-10, 1))) * time.Millisecond)
				select {
				case <-hold.C:
				case <-l.Lost():
				case <-runCtx.Done():
				}
				hold.Stop()
				rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ReleaseTimeout)
				_ = e.Resign(rctx, l)
				rcancel()
				sleep(runCtx, time.Duration(rng.IntN(20))*time.Millisecond)
			}
		})
	}
	cands.Wait()
	sleep(ctx, 3*cfg.Poll)
	stopObservers()
	obs.Wait()
	run.Problems = rep.list()
	return run
}

// recordingDriver records the lock calls of the election key and the
// record calls of the election record; other calls pass through.
type recordingDriver[C syncguard.Fenced] struct {
	d          ElectionDriver[C]
	rec        *history.Recorder
	client     int
	notApplied func(error) bool
	rep        *reporter
}

func (r *recordingDriver[C]) Capabilities() C { return r.d.Capabilities() }

func (r *recordingDriver[C]) done(op string, in history.Input, out history.Output, err error, call, ret int64) {
	r.rep.check(r.client, op, err)
	if err != nil {
		if r.notApplied(err) || in.Kind == history.Get {
			return // no effect (a failed read changes nothing)
		}
		out = history.Output{Unknown: true, Err: codeName(err)}
	}
	r.rec.Add(r.client, in, out, call, ret)
}

func (r *recordingDriver[C]) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	call := history.Now()
	res, err := r.d.Acquire(ctx, key, ttl)
	r.done("acquire", history.Input{Kind: history.Acquire, Key: key, TTLMs: ttl.Milliseconds()},
		history.Output{OK: res.Acquired, LockID: res.LockID, Fence: uint64(res.Fence), ExpMs: res.ExpiresAtMs}, err, call, history.Now())
	return res, err
}

func (r *recordingDriver[C]) Release(ctx context.Context, key, lockID string) (driver.ReleaseResult, error) {
	call := history.Now()
	res, err := r.d.Release(ctx, key, lockID)
	r.done("release", history.Input{Kind: history.Release, Key: key, LockID: lockID}, history.Output{OK: res.OK}, err, call, history.Now())
	return res, err
}

func (r *recordingDriver[C]) Extend(ctx context.Context, key, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	call := history.Now()
	res, err := r.d.Extend(ctx, key, lockID, ttl)
	r.done("extend", history.Input{Kind: history.Extend, Key: key, LockID: lockID, TTLMs: ttl.Milliseconds()},
		history.Output{OK: res.OK, ExpMs: res.ExpiresAtMs}, err, call, history.Now())
	return res, err
}

func (r *recordingDriver[C]) PutRecord(ctx context.Context, name string, fence driver.Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	call := history.Now()
	res, err := r.d.PutRecord(ctx, name, fence, value, ttl)
	r.done("put", history.Input{Kind: history.Put, Key: name, Fence: uint64(fence), Value: string(value)},
		history.Output{OK: res.Stored, Fence: uint64(res.Fence)}, err, call, history.Now())
	return res, err
}

func (r *recordingDriver[C]) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	call := history.Now()
	res, err := r.d.GetRecord(ctx, name)
	out := history.Output{OK: res != nil}
	if res != nil {
		out.Value, out.Fence = string(res.Value), uint64(res.Fence)
	}
	r.done("get", history.Input{Kind: history.Get, Key: name}, out, err, call, history.Now())
	return res, err
}

func (r *recordingDriver[C]) IsLocked(ctx context.Context, key string) (bool, error) {
	return r.d.IsLocked(ctx, key)
}

func (r *recordingDriver[C]) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	return r.d.LookupByKey(ctx, key)
}

func (r *recordingDriver[C]) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	return r.d.LookupByID(ctx, lockID)
}

func (r *recordingDriver[C]) DeleteRecord(ctx context.Context, name string, fence driver.Fence) (bool, error) {
	return r.d.DeleteRecord(ctx, name, fence)
}

func (r *recordingDriver[C]) AllowN(ctx context.Context, key string, limit driver.RateLimit, n int) (driver.RateResult, error) {
	return r.d.AllowN(ctx, key, limit, n)
}

func (r *recordingDriver[C]) ResetRate(ctx context.Context, key string) error {
	return r.d.ResetRate(ctx, key)
}
