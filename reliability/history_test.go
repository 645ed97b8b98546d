package reliability

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// TestModel checks the checker: hand-written histories that a correct
// fenced lock may produce pass, and each kind of violation is caught (and
// gets a visualisation file).
func TestModel(t *testing.T) {
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
	acq := func(key, id string, fence uint64, ttl, from, to int64) step {
		return step{0, history.Input{Kind: history.Acquire, Key: key, TTLMs: ttl},
			history.Output{OK: true, LockID: id, Fence: fence, ExpMs: baseMs + from + ttl}, from, to}
	}
	locked := func(key string, ttl, from, to int64) step {
		return step{0, history.Input{Kind: history.Acquire, Key: key, TTLMs: ttl}, history.Output{}, from, to}
	}
	rel := func(key, id string, ok bool, from, to int64) step {
		return step{0, history.Input{Kind: history.Release, Key: key, LockID: id}, history.Output{OK: ok}, from, to}
	}
	put := func(key string, fence uint64, v string, stored bool, cur uint64, from, to int64) step {
		return step{0, history.Input{Kind: history.Put, Key: key, Fence: fence, Value: v}, history.Output{OK: stored, Fence: cur}, from, to}
	}
	get := func(key, v string, fence uint64, from, to int64) step {
		return step{0, history.Input{Kind: history.Get, Key: key}, history.Output{OK: v != "", Value: v, Fence: fence}, from, to}
	}
	withClient := func(s step, c int) step { s.client = c; return s }
	tests := []struct {
		name  string
		steps []step
		want  porcupine.CheckResult
	}{
		{"sequential lifecycle", []step{
			acq("k", "A", 1, 5000, 0, 10), put("k", 1, "a", true, 1, 11, 20), get("k", "a", 1, 21, 30),
			rel("k", "A", true, 31, 40), acq("k", "B", 2, 5000, 41, 50), rel("k", "B", true, 51, 60),
		}, porcupine.Ok},
		{"two holders at once", []step{
			acq("k", "A", 1, 5000, 0, 10), withClient(acq("k", "B", 2, 5000, 20, 30), 1),
		}, porcupine.Illegal},
		{"takeover after expiry and tolerance", []step{
			acq("k", "A", 1, 100, 0, 10), withClient(acq("k", "B", 2, 5000, 1200, 1210), 1),
			withClient(rel("k", "A", false, 1300, 1310), 0),
		}, porcupine.Ok},
		{"takeover inside the tolerance window", []step{
			acq("k", "A", 1, 100, 0, 10), withClient(acq("k", "B", 2, 5000, 500, 510), 1),
		}, porcupine.Illegal},
		{"fence not increasing", []step{
			acq("k", "A", 5, 5000, 0, 10), rel("k", "A", true, 11, 20), acq("k", "B", 5, 5000, 21, 30),
		}, porcupine.Illegal},
		{"contention on a free key", []step{
			locked("k", 1000, 0, 10),
		}, porcupine.Illegal},
		{"release by a former holder", []step{
			acq("k", "A", 1, 5000, 0, 10), rel("k", "A", true, 11, 20), acq("k", "B", 2, 5000, 21, 30),
			rel("k", "A", true, 31, 40),
		}, porcupine.Illegal},
		{"stale fenced write accepted", []step{
			put("k", 2, "new", true, 2, 0, 10), put("k", 1, "old", true, 1, 20, 30),
		}, porcupine.Illegal},
		{"stale fenced write refused", []step{
			put("k", 2, "new", true, 2, 0, 10), put("k", 1, "old", false, 2, 20, 30), get("k", "new", 2, 31, 40),
		}, porcupine.Ok},
		{"read goes backwards", []step{
			put("k", 1, "a", true, 1, 0, 10), put("k", 2, "b", true, 2, 20, 30), get("k", "a", 1, 40, 50),
		}, porcupine.Illegal},
		{"unknown acquire may have taken the key", []step{
			{0, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{Unknown: true}, 0, -1},
			withClient(locked("k", 5000, 100, 110), 1),
		}, porcupine.Ok},
		{"unknown write may or may not land", []step{
			{0, history.Input{Kind: history.Put, Key: "k", Fence: 3, Value: "x"}, history.Output{Unknown: true}, 0, -1},
			withClient(get("k", "", 0, 20, 30), 1), withClient(get("k", "x", 3, 40, 50), 1),
		}, porcupine.Ok},
		{"overlapping calls linearize either way", []step{
			acq("k", "A", 1, 5000, 0, 100), withClient(locked("k", 5000, 10, 90), 1),
		}, porcupine.Ok},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec history.Recorder
			for _, s := range tc.steps {
				ret := at(s.to)
				if s.to < 0 {
					s.out.Unknown = true
				}
				rec.Add(s.client, s.in, s.out, at(s.from), ret)
			}
			dir := t.TempDir()
			res := history.Check(rec.Ops(), 10*time.Second, dir, "model")
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

	t.Run("failover may lose the lock but not reuse fences", func(t *testing.T) {
		var rec history.Recorder
		rec.Add(0, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "A", Fence: 7, ExpMs: baseMs + 5000}, at(0), at(10))
		rec.Event(9, history.Failover, at(20), at(30))
		rec.Add(1, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "B", Fence: 1000008, ExpMs: baseMs + 5040}, at(40), at(50))
		if res := history.Check(rec.Ops(), 10*time.Second, t.TempDir(), "failover"); res.Outcome != porcupine.Ok {
			t.Errorf("lost lock after failover: %s; want Ok", res.Outcome)
		}
		rec.Add(2, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "C", Fence: 8, ExpMs: baseMs + 15060}, at(10060), at(10070))
		if res := history.Check(rec.Ops(), 10*time.Second, t.TempDir(), "failover2"); res.Outcome != porcupine.Illegal {
			t.Errorf("fence reused after failover: %s; want Illegal", res.Outcome)
		}
	})

	t.Run("a crash may undo an acknowledged release, nothing else", func(t *testing.T) {
		// A released, then a crash: the key may be held by A again until
		// A's expiry (the release committed asynchronously).
		base := func() *history.Recorder {
			var rec history.Recorder
			rec.Add(0, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "A", Fence: 7, ExpMs: baseMs + 5000}, at(0), at(10))
			rec.Add(0, history.Input{Kind: history.Release, Key: "k", LockID: "A"}, history.Output{OK: true}, at(20), at(30))
			return &rec
		}
		contended := history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}
		withCrash := base()
		withCrash.Event(9, history.Crash, at(40), at(50))
		withCrash.Add(1, contended, history.Output{ExpMs: baseMs + 5000}, at(60), at(70))
		if res := history.Check(withCrash.Ops(), 10*time.Second, t.TempDir(), "crash"); res.Outcome != porcupine.Ok {
			t.Errorf("release undone by a crash: %s; want Ok", res.Outcome)
		}
		noCrash := base()
		noCrash.Add(1, contended, history.Output{ExpMs: baseMs + 5000}, at(60), at(70))
		if res := history.Check(noCrash.Ops(), 10*time.Second, t.TempDir(), "nocrash"); res.Outcome != porcupine.Illegal {
			t.Errorf("released key found held without a crash: %s; want Illegal", res.Outcome)
		}
		// An acknowledged acquisition after the release made it durable:
		// after its release and a crash, only its own lock may come back.
		durable := base()
		durable.Add(1, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "B", Fence: 8, ExpMs: baseMs + 5040}, at(40), at(50))
		durable.Event(9, history.Crash, at(60), at(70))
		durable.Add(2, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "C", Fence: 9, ExpMs: baseMs + 5090}, at(80), at(90))
		if res := history.Check(durable.Ops(), 10*time.Second, t.TempDir(), "durable"); res.Outcome != porcupine.Illegal {
			t.Errorf("acknowledged acquisition lost in a crash: %s; want Illegal", res.Outcome)
		}
	})

	t.Run("a wipe loses locks and records but not the fence order", func(t *testing.T) {
		var rec history.Recorder
		rec.Add(0, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "A", Fence: 7, ExpMs: baseMs + 5000}, at(0), at(10))
		rec.Event(9, history.Wipe, at(20), at(30))
		rec.Add(1, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "B", Fence: 9, ExpMs: baseMs + 5040}, at(40), at(50))
		if res := history.Check(rec.Ops(), 10*time.Second, t.TempDir(), "wipe"); res.Outcome != porcupine.Ok {
			t.Errorf("lock lost in a wipe, greater fence: %s; want Ok", res.Outcome)
		}
		var back history.Recorder
		back.Add(0, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "A", Fence: 7, ExpMs: baseMs + 5000}, at(0), at(10))
		back.Event(9, history.Wipe, at(20), at(30))
		back.Add(1, history.Input{Kind: history.Acquire, Key: "k", TTLMs: 5000}, history.Output{OK: true, LockID: "B", Fence: 1, ExpMs: baseMs + 5040}, at(40), at(50))
		if res := history.Check(back.Ops(), 10*time.Second, t.TempDir(), "wipe2"); res.Outcome != porcupine.Illegal {
			t.Errorf("fence back to 1 after a wipe: %s; want Illegal", res.Outcome)
		}
	})
}

// historyRun runs the workload in goroutines against b and, if
// workerArgs is not nil, in two worker processes against the same store,
// and checks the merged history.
func historyRun(t *testing.T, name string, b driver.Backend, workerArgs []string, cfg workload.Config) history.Result {
	t.Helper()
	var rec history.Recorder
	var procs []*workerProc
	if workerArgs != nil {
		for i := range 2 {
			args := append([]string{
				"-clients", "2", "-client-base", strconv.Itoa(100 + 10*i),
				"-duration", cfg.Duration.String(), "-ttl", cfg.TTL.String(),
				"-keys", strings.Join(cfg.Keys, ","), "-seed", strconv.Itoa(i + 7),
				"-stale-every", strconv.Itoa(cfg.StaleEvery),
			}, workerArgs...)
			procs = append(procs, startWorker(t, args...))
		}
	}
	counts, problems := workload.Run(t.Context(), b, &rec, cfg)
	for _, p := range problems {
		t.Errorf("%s: %s", name, p)
	}
	for _, w := range procs {
		rec.AddOp(w.wait(t, cfg.Duration+60*time.Second)...)
	}
	ops, errs := counts.Snapshot()
	t.Logf("%s: in-process clients made %d calls, errors by code: %s; %d worker processes", name, ops, workload.FormatErrors(errs), len(procs))
	return checkHistory(t, name, rec.Ops())
}

func keys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return ks
}

func defaultConfig() workload.Config {
	return workload.Config{
		Keys: keys("h", 4), Clients: 4, Duration: 3 * time.Second,
		TTL: 500 * time.Millisecond, OpTimeout: 2 * time.Second, StaleEvery: 50, Seed: uint64(time.Now().UnixNano()),
	}
}

// TestHistoryMemory: goroutine clients on the in-process driver.
func TestHistoryMemory(t *testing.T) {
	t.Parallel()
	d := memory.New()
	cfg := defaultConfig()
	cfg.Clients = 6
	historyRun(t, "memory", d, nil, cfg)
}

// TestHistoryRedis: goroutine clients and two worker processes on one
// Redis node.
func TestHistoryRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	prefix := "sgrel:" + token()
	d := redisDriver(t, c, prefix)
	cfg := defaultConfig()
	cfg.NotApplied = redisNotApplied
	historyRun(t, "redis", d, []string{"-driver", "redis", "-addrs", redisAddr(), "-prefix", prefix}, cfg)
}

// TestHistoryRedisCluster: the same on the 3-master cluster.
func TestHistoryRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := clusterAddrs()
	if addrs == nil {
		needBackend(t, "SYNCGUARD_REDIS_CLUSTER is not set (scripts/test starts a cluster)")
	}
	c := redisClient(t, addrs)
	prefix := "sgrel:" + token()
	d := redisDriver(t, c, prefix)
	cfg := defaultConfig()
	cfg.Keys = keys("c", 6) // spread over the masters
	cfg.NotApplied = redisNotApplied
	historyRun(t, "redis-cluster", d, []string{"-driver", "redis", "-addrs", strings.Join(addrs, ","), "-prefix", prefix}, cfg)
}

// TestHistoryPostgres: goroutine clients and two worker processes on one
// PostgreSQL database.
func TestHistoryPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	d := pgDriver(t, pgPool(t, dsn, schema, nil))
	cfg := defaultConfig()
	cfg.NotApplied = pgNotApplied
	historyRun(t, "postgres", d, []string{"-driver", "postgres", "-dsn", dsn, "-schema", schema}, cfg)
}

// brokenDriver grants a contended key anyway (with a fresh fence), as a
// driver with a check-then-set race would.
type brokenDriver struct {
	*memory.Driver
	n atomic.Uint64
}

func (b *brokenDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	r, err := b.Driver.Acquire(ctx, key, ttl)
	if err == nil && !r.Acquired && b.n.Add(1)%5 == 0 {
		return driver.AcquireResult{Acquired: true, LockID: driver.NewLockID(), Fence: 1 << 40, ExpiresAtMs: time.Now().UnixMilli() + ttl.Milliseconds()}, nil
	}
	return r, err
}

// TestCheckerCatchesBrokenDriver: the workload plus checker flag a driver
// that breaks mutual exclusion, and write the visualisation.
func TestCheckerCatchesBrokenDriver(t *testing.T) {
	t.Parallel()
	var rec history.Recorder
	cfg := defaultConfig()
	cfg.Duration = time.Second
	workload.Run(t.Context(), &brokenDriver{Driver: memory.New()}, &rec, cfg)
	res := history.Check(rec.Ops(), time.Minute, t.TempDir(), "broken")
	if res.Outcome != porcupine.Illegal {
		t.Fatalf("broken driver: outcome %s; want Illegal (%v)", res.Outcome, res.Stats)
	}
	if _, err := os.Stat(res.Visualization); err != nil {
		t.Errorf("visualisation: %v", err)
	}
	t.Logf("broken driver caught: %v", res.Stats)
}
