package reliability

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// The election histories: candidates campaign, lead for a while (their
// leases auto-extending) and resign, or now and then lead without
// auto-extend and walk away so that the lease lapses; observers watch.
// Every lock call of the election key and every call on its record goes
// into a lock history checked with porcupine (no two leaders at once
// beyond the time rules, terms strictly increasing, the record's fenced
// writes), and history.CheckElection checks what the election promised
// on top (terms of campaigns and observers, published values, no skipped
// leader).

func defaultElectionConfig() workload.ElectionConfig {
	return workload.ElectionConfig{
		Key: "leader", Candidates: 4, Observers: 3, Duration: 6 * time.Second,
		TTL: 250 * time.Millisecond, MaxHold: 200 * time.Millisecond, LapseEvery: 15,
		Poll: 20 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Seed: uint64(time.Now().UnixNano()),
	}
}

// electionRun runs the election workload over drivers and checks it.
func electionRun[C syncguard.Fenced](t *testing.T, name string, drivers []workload.ElectionDriver[C], cfg workload.ElectionConfig) {
	t.Helper()
	var rec history.Recorder
	run := workload.RunElection(t.Context(), drivers, &rec, cfg)
	for _, p := range run.Problems {
		t.Errorf("%s: %s", name, p)
	}
	calls, errs := run.Calls.Snapshot()
	t.Logf("%s: %d recorded driver calls, errors by code: %s; Campaign errors: %s", name, calls, workload.FormatErrors(errs), workload.FormatErrors(run.CampaignErrors))
	ops := rec.Ops()
	start := time.Now()
	res := history.Check(ops, time.Minute, artifactsDir(t), t.Name()+"-"+name)
	t.Logf("%s: lock history %v; porcupine: %s in %v", name, res.Stats, res.Outcome, time.Since(start).Round(time.Millisecond))
	for _, v := range res.Violations {
		t.Errorf("%s: %s", name, v)
	}
	if res.Outcome != "Ok" {
		t.Errorf("%s: election history not linearizable (%s); visualisation: %s", name, res.Outcome, res.Visualization)
	}
	st, violations := history.CheckElection(cfg.Key, ops, run.Campaigns, run.Observed)
	t.Logf("%s: %v", name, st)
	for _, v := range violations {
		t.Errorf("%s: %s", name, v)
	}
	if len(violations) > 0 {
		for i, seq := range run.Observed {
			t.Logf("%s: observer %d: %s", name, i, history.FormatObservations(seq))
		}
	}
	t.Logf("%s: %d leaders let their lease lapse", name, run.Lapsed)
	if st.Elected < 5 || st.Observations == 0 || res.Stats.Stored == 0 {
		t.Errorf("%s: the workload exercised too little: %v; %v", name, st, res.Stats)
	}
}

func TestElectionHistoryMemory(t *testing.T) {
	t.Parallel()
	electionRun(t, "memory", []workload.ElectionDriver[memory.Capabilities]{memory.New()}, defaultElectionConfig())
}

func TestElectionHistoryRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	cfg := defaultElectionConfig()
	cfg.NotApplied = redisNotApplied
	electionRun(t, "redis", []workload.ElectionDriver[redis.Capabilities]{redisDriver(t, c, "sgrel:"+token())}, cfg)
}

func TestElectionHistoryPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	// Two driver values on one database: candidates and observers
	// alternate between them, as separate processes would.
	a := pgDriver(t, pgPool(t, dsn, schema, nil))
	b := pgDriver(t, pgPool(t, dsn, schema, nil))
	cfg := defaultElectionConfig()
	cfg.NotApplied = pgNotApplied
	electionRun(t, "postgres", []workload.ElectionDriver[postgres.Capabilities]{a, b}, cfg)
}

// TestElectionFaultRedisProxy: half the candidates and observers reach
// Redis through the fault proxy (latency, partitions, resets), the others
// directly.
func TestElectionFaultRedisProxy(t *testing.T) {
	t.Parallel()
	p, proxied, direct := redisProxyPair(t)
	cfg := defaultElectionConfig()
	cfg.NotApplied = redisNotApplied
	cfg.Duration = 8 * time.Second
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	injected := make(chan int, 1)
	go func() { injected <- runProxyFaults(t, ctx, p, 2) }()
	electionRun(t, "redis+toxiproxy", []workload.ElectionDriver[redis.Capabilities]{proxied, direct}, cfg)
	cancel()
	t.Logf("redis+toxiproxy: %d faults injected", <-injected)
}

// TestElectionChecks checks history.CheckElection on hand-written runs.
func TestElectionChecks(t *testing.T) {
	t.Parallel()
	const ms = int64(time.Millisecond)
	grant := func(client int, fence uint64, ret int64) history.Op {
		return history.Op{Client: client, In: history.Input{Kind: history.Acquire, Key: "leader"},
			Out: history.Output{OK: true, Fence: fence}, Call: ret - ms, Return: ret}
	}
	ops := []history.Op{grant(0, 10, 100*ms), grant(1, 11, 300*ms), grant(0, 12, 500*ms), grant(2, 13, 700*ms)}
	campaigns := []history.Campaign{
		{Client: 0, Value: "c0-1", Term: 10, Call: 0, Return: 110 * ms},
		{Client: 1, Value: "c1-1", Term: 11, Call: 50 * ms, Return: 310 * ms},
		{Client: 0, Value: "c0-2", Term: 12, Call: 400 * ms, Return: 510 * ms},
		{Client: 2, Value: "c2-1", Call: 600 * ms, Return: 900 * ms}, // failed after its grant (term 13)
	}
	obs := func(terms ...uint64) []history.Observation {
		values := map[uint64]string{10: "c0-1", 11: "c1-1", 12: "c0-2", 13: "c2-1"}
		var seq []history.Observation
		for i, term := range terms {
			seq = append(seq, history.Observation{Term: term, Value: values[term], At: (800 + int64(i)*20) * ms})
		}
		return seq
	}
	tests := []struct {
		name      string
		campaigns []history.Campaign
		observed  [][]history.Observation
		bad       bool
	}{
		{"every leader in order", campaigns, [][]history.Observation{obs(10, 11, 12, 13), obs(11, 12)}, false},
		{"observer goes backwards", campaigns, [][]history.Observation{obs(11, 10)}, true},
		{"term never granted", campaigns, [][]history.Observation{obs(10, 14)}, true},
		{"value of another term", campaigns, [][]history.Observation{{{Term: 11, Value: "c0-1", At: 800 * ms}}}, true},
		{"value nobody published", campaigns, [][]history.Observation{{{Term: 11, Value: "x", At: 800 * ms}}}, true},
		{"published leader skipped", campaigns, [][]history.Observation{obs(10, 12)}, true},
		{"campaign terms out of real-time order", []history.Campaign{
			{Client: 0, Value: "c0-1", Term: 11, Call: 0, Return: 110 * ms},
			{Client: 1, Value: "c1-1", Term: 10, Call: 200 * ms, Return: 310 * ms},
		}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, violations := history.CheckElection("leader", ops, tc.campaigns, tc.observed)
			if got := len(violations) > 0; got != tc.bad {
				t.Errorf("violations %q; want some: %t", violations, tc.bad)
			}
		})
	}

	t.Run("skip excused: the next leader was granted before the Campaign returned", func(t *testing.T) {
		late := append([]history.Campaign(nil), campaigns...)
		late[1].Return = 600 * ms // term 12 granted at 500ms
		st, violations := history.CheckElection("leader", ops, late, [][]history.Observation{obs(10, 12)})
		if len(violations) > 0 || st.Excused != 1 {
			t.Errorf("violations %q, %d excused; want none and 1", violations, st.Excused)
		}
	})
}

// TestElectionCatchesBrokenDriver: an election over a driver that now and
// then grants a held key yields a history porcupine rejects.
func TestElectionCatchesBrokenDriver(t *testing.T) {
	t.Parallel()
	var rec history.Recorder
	cfg := defaultElectionConfig()
	cfg.Duration = 2 * time.Second
	cfg.LapseEvery = 0
	workload.RunElection(t.Context(), []workload.ElectionDriver[memory.Capabilities]{&brokenDriver{Driver: memory.New()}}, &rec, cfg)
	res := history.Check(rec.Ops(), time.Minute, t.TempDir(), "broken-election")
	if res.Outcome != "Illegal" {
		t.Fatalf("outcome %s; want Illegal (%v)", res.Outcome, res.Stats)
	}
	t.Logf("broken driver caught: %v", res.Stats)
}
