package reliability

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// TestPermitModel checks the permit checker: hand-written histories that
// a correct permit store may produce pass, and each kind of violation is
// caught (and gets a visualisation file).
func TestPermitModel(t *testing.T) {
	t.Parallel()
	const ms = int64(time.Millisecond)
	base := time.Now().UnixNano() / ms * ms
	at := func(off int64) int64 { return base + off*ms }
	baseMs := base / ms
	type step struct {
		client   int
		in       history.Input
		out      history.Output
		from, to int64 // ms offsets; to < 0: unknown outcome
	}
	acq := func(c int, id string, limit int, fence uint64, ttl, from, to int64) step {
		return step{c, history.Input{Kind: history.Acquire, Key: "k", Limit: limit, TTLMs: ttl},
			history.Output{OK: true, LockID: id, Fence: fence, ExpMs: baseMs + from + ttl}, from, to}
	}
	full := func(c, limit int, from, to int64) step {
		return step{c, history.Input{Kind: history.Acquire, Key: "k", Limit: limit, TTLMs: 5000}, history.Output{}, from, to}
	}
	unknownAcq := func(c, limit int, from int64) step {
		return step{c, history.Input{Kind: history.Acquire, Key: "k", Limit: limit, TTLMs: 5000}, history.Output{}, from, -1}
	}
	rel := func(c int, id string, ok bool, from, to int64) step {
		return step{c, history.Input{Kind: history.Release, Key: "k", LockID: id}, history.Output{OK: ok}, from, to}
	}
	ext := func(c int, id string, ok bool, ttl, from, to int64) step {
		out := history.Output{OK: ok}
		if ok {
			out.ExpMs = baseMs + from + ttl
		}
		return step{c, history.Input{Kind: history.Extend, Key: "k", LockID: id, TTLMs: ttl}, out, from, to}
	}
	tests := []struct {
		name  string
		steps []step
		want  porcupine.CheckResult
	}{
		{"three of three, then a released slot", []step{
			acq(0, "A", 3, 1, 5000, 0, 10), acq(1, "B", 3, 2, 5000, 11, 20), acq(2, "C", 3, 3, 5000, 21, 30),
			full(3, 3, 31, 40), rel(0, "A", true, 41, 50), acq(3, "D", 3, 4, 5000, 51, 60),
			rel(1, "B", true, 61, 70), rel(2, "C", true, 61, 70), rel(3, "D", true, 71, 80),
		}, porcupine.Ok},
		{"an expired permit frees its slot after the tolerance", []step{
			acq(0, "A", 1, 1, 100, 0, 10), acq(1, "B", 1, 2, 5000, 1200, 1210), rel(0, "A", false, 1300, 1310),
		}, porcupine.Ok},
		{"a live holder's smaller limit wins", []step{
			acq(0, "A", 2, 1, 5000, 0, 10), acq(1, "B", 3, 2, 5000, 11, 20), full(2, 3, 21, 30),
		}, porcupine.Ok},
		{"an unknown acquisition may hold the slot", []step{
			unknownAcq(0, 1, 0), full(1, 1, 100, 110), acq(2, "B", 1, 7, 5000, 200, 210),
		}, porcupine.Ok},
		{"overlapping release and grant linearize either way", []step{
			acq(0, "A", 1, 1, 5000, 0, 10), rel(0, "A", true, 100, 200), acq(1, "B", 1, 2, 5000, 150, 250),
		}, porcupine.Ok},
		{"an extended permit outlives its first TTL", []step{
			acq(0, "A", 1, 1, 100, 0, 10), ext(0, "A", true, 5000, 50, 60), full(1, 1, 1300, 1310), rel(0, "A", true, 1400, 1410),
		}, porcupine.Ok},
		{"an unknown release may have freed the slot", []step{
			acq(0, "A", 1, 1, 5000, 0, 10), rel(0, "A", false, 100, -1), acq(1, "B", 1, 2, 5000, 200, 210),
		}, porcupine.Ok},
		{"an unknown extension may have kept the permit", []step{
			acq(0, "A", 1, 1, 100, 0, 10), {0, history.Input{Kind: history.Extend, Key: "k", LockID: "A", TTLMs: 5000}, history.Output{}, 50, -1},
			full(1, 1, 1300, 1310),
		}, porcupine.Ok},

		{"granted beyond the limit", []step{
			acq(0, "A", 2, 1, 5000, 0, 10), acq(1, "B", 2, 2, 5000, 11, 20), acq(2, "C", 2, 3, 5000, 21, 30),
		}, porcupine.Illegal},
		{"granted beyond a live holder's smaller limit", []step{
			acq(0, "A", 1, 1, 5000, 0, 10), acq(1, "B", 3, 2, 5000, 11, 20),
		}, porcupine.Illegal},
		{"fence reused", []step{
			acq(0, "A", 3, 5, 5000, 0, 10), acq(1, "B", 3, 5, 5000, 11, 20),
		}, porcupine.Illegal},
		{"fence going backwards after a release", []step{
			acq(0, "A", 3, 5, 5000, 0, 10), rel(0, "A", true, 11, 20), acq(1, "B", 3, 4, 5000, 21, 30),
		}, porcupine.Illegal},
		{"full with a free slot", []step{
			acq(0, "A", 2, 1, 5000, 0, 10), full(1, 2, 11, 20),
		}, porcupine.Illegal},
		{"full when only an expired permit is left", []step{
			acq(0, "A", 1, 1, 100, 0, 10), full(1, 1, 1300, 1310),
		}, porcupine.Illegal},
		{"slot taken inside the tolerance window", []step{
			acq(0, "A", 1, 1, 100, 0, 10), acq(1, "B", 1, 2, 5000, 500, 510),
		}, porcupine.Illegal},
		{"release of a live permit fails", []step{
			acq(0, "A", 3, 1, 5000, 0, 10), rel(0, "A", false, 100, 110),
		}, porcupine.Illegal},
		{"a permit released twice", []step{
			acq(0, "A", 3, 1, 5000, 0, 10), rel(0, "A", true, 11, 20), rel(0, "A", true, 21, 30),
		}, porcupine.Illegal},
		{"release of a permit never granted succeeds", []step{
			rel(0, "X", true, 0, 10),
		}, porcupine.Illegal},
		{"extension of an expired permit succeeds", []step{
			acq(0, "A", 3, 1, 100, 0, 10), ext(0, "A", true, 5000, 1300, 1310),
		}, porcupine.Illegal},
		{"release of a permit the grant proved expired", []step{
			acq(0, "A", 1, 1, 100, 0, 10), acq(1, "B", 1, 2, 5000, 1200, 1210), rel(0, "A", true, 1300, 1310),
		}, porcupine.Illegal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec history.Recorder
			for _, s := range tc.steps {
				if s.to < 0 {
					s.out.Unknown = true
				}
				rec.Add(s.client, s.in, s.out, at(s.from), at(s.to))
			}
			res := history.CheckPermits(rec.Ops(), 10*time.Second, t.TempDir(), "permits")
			if diff := cmp.Diff(tc.want, res.Outcome); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if res.Outcome != porcupine.Ok {
				if _, err := os.Stat(res.Visualization); err != nil {
					t.Errorf("no visualisation written: %q, %v", res.Visualization, err)
				}
			}
		})
	}
}

// checkPermitHistory checks a permit history with porcupine and fails t
// on a violation, logging the counts and where the visualisation is.
func checkPermitHistory(t *testing.T, name string, ops []history.Op) history.Result {
	t.Helper()
	start := time.Now()
	res := history.CheckPermits(ops, time.Minute, artifactsDir(t), t.Name()+"-"+name)
	ps := history.SummarisePermits(ops)
	t.Logf("%s: %v by %d clients; porcupine: %s in %v", name, ps, res.Stats.Clients, res.Outcome, time.Since(start).Round(time.Millisecond))
	for _, v := range res.Violations {
		t.Errorf("%s: %s", name, v)
	}
	if res.Outcome != porcupine.Ok {
		t.Errorf("%s: permit history not linearizable (%s); visualisation: %s", name, res.Outcome, res.Visualization)
	}
	if ps.Granted == 0 || ps.Full == 0 || ps.Released == 0 {
		t.Errorf("%s: the workload exercised too little (grants, full semaphores and releases all needed): %v", name, ps)
	}
	return res
}

func defaultPermitConfig() workload.PermitConfig {
	return workload.PermitConfig{
		Keys: keys("p", 3), Clients: 10, Duration: 4 * time.Second, Limits: []int{3, 3, 3, 2},
		TTL: 400 * time.Millisecond, OpTimeout: 2 * time.Second, AbandonEvery: 40, StaleEvery: 60,
		Seed: uint64(time.Now().UnixNano()),
	}
}

// permitHistoryRun runs the permit workload against ps and checks the
// history.
func permitHistoryRun(t *testing.T, name string, ps driver.PermitStore, cfg workload.PermitConfig) {
	t.Helper()
	var rec history.Recorder
	counts, problems := workload.RunPermits(t.Context(), ps, &rec, cfg)
	for _, p := range problems {
		t.Errorf("%s: %s", name, p)
	}
	ops, errs := counts.Snapshot()
	t.Logf("%s: %d calls, errors by code: %s", name, ops, workload.FormatErrors(errs))
	checkPermitHistory(t, name, rec.Ops())
}

func TestPermitHistoryMemory(t *testing.T) {
	t.Parallel()
	permitHistoryRun(t, "memory", memory.New(), defaultPermitConfig())
}

func TestPermitHistoryRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	cfg := defaultPermitConfig()
	cfg.NotApplied = redisNotApplied
	permitHistoryRun(t, "redis", redisDriver(t, c, "sgrel:"+token()), cfg)
}

func TestPermitHistoryRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := clusterAddrs()
	if addrs == nil {
		needBackend(t, "SYNCGUARD_REDIS_CLUSTER is not set (scripts/test starts a cluster)")
	}
	c := redisClient(t, addrs)
	cfg := defaultPermitConfig()
	cfg.Keys = keys("pc", 3) // spread over the masters
	cfg.NotApplied = redisNotApplied
	permitHistoryRun(t, "redis-cluster", redisDriver(t, c, "sgrel:"+token()), cfg)
}

func TestPermitHistoryPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	cfg := defaultPermitConfig()
	cfg.NotApplied = pgNotApplied
	permitHistoryRun(t, "postgres", pgDriver(t, pgPool(t, dsn, schema, nil)), cfg)
}

// permitFaultWorkload is faultWorkload for permits: clients through the
// proxy and direct ones on one store while inject runs.
func permitFaultWorkload(t *testing.T, name string, proxied, direct driver.PermitStore, notApplied func(error) bool, inject func(ctx context.Context) int) {
	t.Helper()
	var rec history.Recorder
	cfg := defaultPermitConfig()
	cfg.NotApplied = notApplied
	cfg.OpTimeout = time.Second
	cfg.Duration = time.Hour // ended by the injector
	runWithFaults(t, name, []int{6, 3}, inject, func(ctx context.Context, i, clients int) (*workload.Counts, []string) {
		c := cfg
		c.ClientBase = i * 10
		c.Clients = clients
		c.Seed += uint64(i)
		return workload.RunPermits(ctx, []driver.PermitStore{proxied, direct}[i], &rec, c)
	})
	res := checkPermitHistory(t, name, rec.Ops())
	if res.Stats.Unknown == 0 {
		t.Logf("%s: note: no call had an unknown outcome", name)
	}
}

// TestPermitFaultRedisProxy: latency, partitions and resets between
// permit clients and one Redis node.
func TestPermitFaultRedisProxy(t *testing.T) {
	t.Parallel()
	p, proxied, direct := redisProxyPair(t)
	permitFaultWorkload(t, "redis+toxiproxy", proxied, direct, redisNotApplied, func(ctx context.Context) int {
		return runProxyFaults(t, ctx, p, 2)
	})
}

// TestPermitFaultPostgresProxy: the same between permit clients and
// PostgreSQL.
func TestPermitFaultPostgresProxy(t *testing.T) {
	t.Parallel()
	p, proxied, direct := pgProxyPair(t, 8)
	permitFaultWorkload(t, "postgres+toxiproxy", proxied, direct, pgNotApplied, func(ctx context.Context) int {
		return runProxyFaults(t, ctx, p, 2)
	})
}

// beyondLimit asks the store for one permit more than its caller's limit:
// the semaphore is held limit+1 times at once.
type beyondLimit struct{ *memory.Driver }

func (b beyondLimit) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	return b.Driver.AcquirePermit(ctx, key, limit+1, ttl)
}

// reusedFence hands every third permit of a key out with the fence of the
// permit granted before it.
type reusedFence struct {
	*memory.Driver
	mu   sync.Mutex
	n    map[string]int
	last map[string]driver.Fence
}

func (b *reusedFence) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	r, err := b.Driver.AcquirePermit(ctx, key, limit, ttl)
	if err != nil || !r.Acquired {
		return r, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n[key]++
	if prev := b.last[key]; prev != 0 && b.n[key]%3 == 0 {
		r.Fence = prev
	}
	b.last[key] = r.Fence
	return r, nil
}

// TestPermitCheckerCatchesBrokenStore: the permit workload plus checker
// flag a store that grants beyond the limit and one that reuses fences.
func TestPermitCheckerCatchesBrokenStore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ps   driver.PermitStore
	}{
		{"beyond the limit", beyondLimit{memory.New()}},
		{"reused fence", &reusedFence{Driver: memory.New(), n: map[string]int{}, last: map[string]driver.Fence{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rec history.Recorder
			cfg := defaultPermitConfig()
			cfg.Duration = time.Second
			workload.RunPermits(t.Context(), tc.ps, &rec, cfg)
			res := history.CheckPermits(rec.Ops(), time.Minute, t.TempDir(), "broken")
			if res.Outcome != porcupine.Illegal {
				t.Fatalf("outcome %s; want Illegal (%v)", res.Outcome, history.SummarisePermits(rec.Ops()))
			}
			if _, err := os.Stat(res.Visualization); err != nil {
				t.Errorf("visualisation: %v", err)
			}
			t.Logf("caught: %v; direct checks: %q", history.SummarisePermits(rec.Ops()), res.Violations)
		})
	}
}
