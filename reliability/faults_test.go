package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// ---- toxiproxy ----

type proxy struct{ p *toxiproxy.Proxy }

// startProxy starts an in-process toxiproxy on a loopback port in front of
// upstream; it stops when t ends.
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, fmt.Sprintf("rel-%d", time.Now().UnixNano()), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &proxy{p}
}

func (p *proxy) addr() string { return p.p.Listen }

func (p *proxy) toxic(t *testing.T, js string) {
	t.Helper()
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Errorf("add toxic %s: %v", js, err)
	}
}

func (p *proxy) heal() { p.p.Toxics.ResetToxics(context.Background()) }

// fault is one bounded fault phase.
type fault struct {
	name string
	on   func(t *testing.T, p *proxy)
	hold time.Duration
}

// proxyFaults: latency, a partition that drops requests and then closes
// the connections, and connection resets that lose replies of executed
// requests. Each phase is followed by a healthy phase.
var proxyFaults = []fault{
	{"latency 300ms each way", func(t *testing.T, p *proxy) {
		p.toxic(t, `{"name":"lu","type":"latency","stream":"upstream","attributes":{"latency":300,"jitter":100}}`)
		p.toxic(t, `{"name":"ld","type":"latency","stream":"downstream","attributes":{"latency":300,"jitter":100}}`)
	}, 700 * time.Millisecond},
	{"partition (requests dropped, connections closed after 400ms)", func(t *testing.T, p *proxy) {
		p.toxic(t, `{"name":"cut","type":"timeout","stream":"upstream","attributes":{"timeout":400}}`)
	}, 700 * time.Millisecond},
	{"reset after reply (executed, reply lost)", func(t *testing.T, p *proxy) {
		p.toxic(t, `{"name":"reset","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`)
	}, 300 * time.Millisecond},
}

// runProxyFaults applies rounds × proxyFaults, each followed by 500ms of
// health, and returns how many faults it injected.
func runProxyFaults(t *testing.T, ctx context.Context, p *proxy, rounds int) int {
	n := 0
	for range rounds {
		for _, f := range proxyFaults {
			if ctx.Err() != nil {
				return n
			}
			f.on(t, p)
			n++
			sleepCtx(ctx, f.hold)
			p.heal()
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// redisProxyPair returns a fault proxy in front of Redis and two drivers
// of one key prefix: proxied through it, and direct.
func redisProxyPair(t *testing.T) (p *proxy, proxied, direct *redis.Driver) {
	t.Helper()
	p = startProxy(t, redisAddr())
	prefix := "sgrel:" + token()
	direct = redisDriver(t, redisClient(t, []string{redisAddr()}), prefix)
	proxied = redisDriver(t, redisClient(t, []string{p.addr()}), prefix)
	return p, proxied, direct
}

// pgProxyPair returns a fault proxy in front of PostgreSQL and two drivers
// on one schema of their own: proxied through it (a pool of maxConns),
// and direct.
func pgProxyPair(t *testing.T, maxConns int32) (p *proxy, proxied, direct *postgres.Driver) {
	t.Helper()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	direct = pgDriver(t, pgPool(t, dsn, schema, nil))
	u, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p = startProxy(t, net.JoinHostPort(u.ConnConfig.Host, strconv.Itoa(int(u.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(p.addr())
	proxied = pgDriver(t, pgPool(t, dsn, schema, func(c *pgxpool.Config) {
		c.ConnConfig.Host = host
		pn, _ := strconv.Atoi(port)
		c.ConnConfig.Port = uint16(pn)
		c.ConnConfig.Fallbacks = nil
		c.MaxConns = maxConns
	}))
	return p, proxied, direct
}

// runWithFaults runs one workload per entry of clients (workload i with
// clients[i] clients) while inject runs, stops them half a second after
// it returns, and reports their calls and unexpected errors.
func runWithFaults(t *testing.T, name string, clients []int, inject func(ctx context.Context) int, run func(ctx context.Context, i, clients int) (*workload.Counts, []string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		c *workload.Counts
		p []string
	}
	results := make(chan result, len(clients))
	for i, n := range clients {
		go func() {
			c, p := run(ctx, i, n)
			results <- result{c, p}
		}()
	}
	start := time.Now()
	injected := inject(ctx)
	sleepCtx(ctx, 500*time.Millisecond)
	cancel()
	for range clients {
		r := <-results
		for _, p := range r.p {
			if !strings.Contains(p, "Internal") { // reported below by code
				t.Errorf("%s: %s", name, p)
			}
		}
		ops, errs := r.c.Snapshot()
		t.Logf("%s: %d calls, errors by code: %s", name, ops, workload.FormatErrors(errs))
		if errs["unmapped"] > 0 || errs["InvalidArgument"] > 0 || errs["Internal"] > 0 {
			t.Errorf("%s: unexpected error codes: %s", name, workload.FormatErrors(errs))
		}
	}
	t.Logf("%s: %d faults injected in %v", name, injected, time.Since(start).Round(time.Millisecond))
}

// faultWorkload runs clients against proxied (through the faults) and
// direct (healthy path) backends on one store while inject runs, then
// checks the merged history.
func faultWorkload(t *testing.T, name string, proxied, direct driver.Backend, notApplied func(error) bool, inject func(ctx context.Context) int) {
	t.Helper()
	var rec history.Recorder
	cfg := defaultConfig()
	cfg.NotApplied = notApplied
	cfg.OpTimeout = time.Second
	cfg.Duration = time.Hour // ended by the injector
	runWithFaults(t, name, []int{4, 2}, inject, func(ctx context.Context, i, clients int) (*workload.Counts, []string) {
		c := cfg
		c.ClientBase = i * 10
		c.Clients = clients
		return workload.Run(ctx, []driver.Backend{proxied, direct}[i], &rec, c)
	})
	res := checkHistory(t, name, rec.Ops())
	if res.Stats.Unknown == 0 {
		t.Logf("%s: note: no call had an unknown outcome", name)
	}
}

// TestFaultRedisProxy: latency, partitions and resets between clients
// and one Redis node.
func TestFaultRedisProxy(t *testing.T) {
	t.Parallel()
	p, proxied, direct := redisProxyPair(t)
	faultWorkload(t, "redis+toxiproxy", proxied, direct, redisNotApplied, func(ctx context.Context) int {
		return runProxyFaults(t, ctx, p, 2)
	})
}

// TestFaultPostgresProxy: the same between clients and PostgreSQL.
func TestFaultPostgresProxy(t *testing.T) {
	t.Parallel()
	p, proxied, direct := pgProxyPair(t, 6)
	faultWorkload(t, "postgres+toxiproxy", proxied, direct, pgNotApplied, func(ctx context.Context) int {
		return runProxyFaults(t, ctx, p, 2)
	})
}

// ---- paused holder ----

// pausedHolder runs the worker in pause mode: it takes the key and writes
// with its fence; the test SIGSTOPs it past TTL + tolerance, takes the key
// over and writes with the newer fence, SIGCONTs it and checks that every
// write the worker made after resuming was refused and its release failed.
func pausedHolder(t *testing.T, name string, b driver.Backend, workerArgs []string) {
	t.Helper()
	const key = "paused"
	ttl := 500 * time.Millisecond
	w := startWorker(t, append([]string{"-mode", "pause", "-keys", key, "-ttl", ttl.String(), "-client-base", "50"}, workerArgs...)...)
	var held heldMsg
	select {
	case held = <-w.held:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: worker did not take the lock; stderr: %s", name, w.stderr.String())
	}
	if err := w.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	stopped := time.Now()
	var rec history.Recorder
	time.Sleep(ttl + driver.Tolerance + 300*time.Millisecond)
	// Take over.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	in := history.Input{Kind: history.Acquire, Key: key, TTLMs: (30 * time.Second).Milliseconds()}
	call := history.Now()
	r, err := b.Acquire(ctx, key, 30*time.Second)
	rec.Add(1, in, history.Output{OK: r.Acquired, LockID: r.LockID, Fence: uint64(r.Fence), ExpMs: r.ExpiresAtMs, Unknown: err != nil}, call, history.Now())
	if err != nil || !r.Acquired {
		_ = w.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("%s: takeover of the paused holder's key: %+v, %v", name, r, err)
	}
	if uint64(r.Fence) <= held.Fence {
		t.Errorf("%s: takeover fence %v ≤ paused holder's %d", name, r.Fence, held.Fence)
	}
	in = history.Input{Kind: history.Put, Key: key, Fence: uint64(r.Fence), Value: "takeover"}
	call = history.Now()
	pr, err := b.PutRecord(ctx, workload.RecordName(key), r.Fence, []byte("takeover"), 0)
	rec.Add(1, in, history.Output{OK: pr.Stored, Fence: uint64(pr.Fence), Unknown: err != nil}, call, history.Now())
	if err != nil || !pr.Stored {
		t.Errorf("%s: new holder's write: %+v, %v", name, pr, err)
	}
	resumed := history.Now()
	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	t.Logf("%s: worker (fence %d) stopped for %v; new holder fence %v", name, held.Fence, time.Since(stopped).Round(time.Millisecond), r.Fence)
	ops := w.wait(t, 60*time.Second)
	late, refused := 0, 0
	for _, o := range ops {
		if o.Call > resumed && o.In.Kind == history.Put {
			late++
			if !o.Out.Unknown && !o.Out.OK {
				refused++
			}
			if o.Out.OK && !o.Out.Unknown {
				t.Errorf("%s: late write of the paused holder accepted: %+v", name, o)
			}
		}
		if o.In.Kind == history.Release && o.Out.OK {
			t.Errorf("%s: paused holder released a lock it lost: %+v", name, o)
		}
	}
	if late == 0 {
		t.Errorf("%s: the worker made no write after resuming", name)
	}
	t.Logf("%s: %d late fenced writes after SIGCONT, %d refused", name, late, refused)
	rec.AddOp(ops...)
	if _, err := b.Release(ctx, "", r.LockID); err != nil {
		t.Error(err)
	}
	checkHistory(t, name, rec.Ops())
}

func TestFaultPausedHolderRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	prefix := "sgrel:" + token()
	d := redisDriver(t, c, prefix)
	pausedHolder(t, "redis paused holder", d, []string{"-driver", "redis", "-addrs", redisAddr(), "-prefix", prefix})
}

func TestFaultPausedHolderPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	d := pgDriver(t, pgPool(t, dsn, schema, nil))
	pausedHolder(t, "postgres paused holder", d, []string{"-driver", "postgres", "-dsn", dsn, "-schema", schema})
}

// ---- Redis Cluster failover ----

// privateCluster starts a 3+3 cluster of its own with scripts/redis-cluster
// (the shared failover cluster is killed by drivers/redis's own test at
// the same time) and stops it when t ends.
func privateCluster(t *testing.T) (dir string, addrs []string) {
	t.Helper()
	base := 7200
	if v := os.Getenv("SYNCGUARD_RELIABILITY_CLUSTER_PORT"); v != "" {
		base, _ = strconv.Atoi(v)
	}
	return privateClusterAt(t, base)
}

// privateClusterAt is privateCluster on ports base to base+5.
func privateClusterAt(t *testing.T, base int) (dir string, addrs []string) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		needBackend(t, "redis-server not installed")
	}
	for p := base; p < base+6; p++ {
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err != nil {
			needBackend(t, "port %d for the private failover cluster is taken (set SYNCGUARD_RELIABILITY_CLUSTER_PORT)", p)
		} else {
			ln.Close()
		}
	}
	dir = t.TempDir()
	script, _ := filepath.Abs("../scripts/redis-cluster")
	env := append(os.Environ(), "REDIS_CLUSTER_BASE_PORT="+strconv.Itoa(base))
	cmd := exec.Command(script, "start", dir)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(func() {
		stop := exec.Command(script, "stop", dir)
		stop.Env = env
		_ = stop.Run()
	})
	if err != nil {
		t.Fatalf("scripts/redis-cluster start: %v: %s", err, stderr.String())
	}
	return dir, strings.Split(strings.TrimSpace(string(out)), ",")
}

func clusterOK(addrs []string) bool {
	masters := 0
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		info, err := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
		if err != nil || !strings.Contains(string(info), "cluster_state:ok") {
			return false
		}
		repl, err := exec.Command("redis-cli", "-h", host, "-p", port, "info", "replication").Output()
		if err != nil {
			return false
		}
		switch r := string(repl); {
		case strings.Contains(r, "role:master"):
			masters++
		case !strings.Contains(r, "master_link_status:up"):
			return false
		}
	}
	return masters == 3
}

// masterOf returns the address of the master serving key's slot.
func masterOf(ctx context.Context, c rueidis.Client, key string) (string, error) {
	slot, err := c.Do(ctx, c.B().ClusterKeyslot().Key(key).Build()).AsInt64()
	if err != nil {
		return "", err
	}
	res, err := c.Do(ctx, c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return "", err
	}
	for _, rng := range res {
		v, _ := rng.ToArray()
		if len(v) < 3 {
			continue
		}
		lo, _ := v[0].AsInt64()
		hi, _ := v[1].AsInt64()
		if slot < lo || slot > hi {
			continue
		}
		node, _ := v[2].ToArray()
		host, _ := node[0].ToString()
		p, _ := node[1].AsInt64()
		return fmt.Sprintf("%s:%d", host, p), nil
	}
	return "", fmt.Errorf("slot %d not served", slot)
}

// TestFaultRedisClusterFailover: while goroutine clients and two worker
// processes run the workload on a private cluster, SIGKILL a master (twice,
// different shards), wait for its replica's promotion, restart it. A
// Failover event in the history allows what asynchronous replication may
// lose (the lock, the last writes); fences must still increase.
func TestFaultRedisClusterFailover(t *testing.T) {
	t.Parallel()
	dir, addrs := privateCluster(t)
	c := redisClient(t, addrs)
	prefix := "sgrel:" + token()
	d := redisDriver(t, c, prefix)
	cfg := defaultConfig()
	cfg.Keys = keys("f", 6)
	cfg.NotApplied = redisNotApplied
	cfg.Duration = time.Hour
	cfg.OpTimeout = time.Second
	var rec history.Recorder
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var procs []*workerProc
	for i := range 2 {
		procs = append(procs, startWorker(t, "-driver", "redis", "-addrs", strings.Join(addrs, ","), "-prefix", prefix,
			"-clients", "2", "-client-base", strconv.Itoa(100+10*i), "-duration", "90s", "-ttl", cfg.TTL.String(),
			"-keys", strings.Join(cfg.Keys, ","), "-op-timeout", "1s", "-seed", strconv.Itoa(i)))
	}
	done := make(chan *workload.Counts, 1)
	go func() {
		counts, problems := workload.Run(ctx, d, &rec, cfg)
		for _, p := range problems {
			if !strings.Contains(p, "Internal") {
				t.Errorf("%s", p)
			}
		}
		done <- counts
	}()
	sleepCtx(ctx, time.Second)
	kills := 0
	for i, key := range []string{"f0", "f3"} {
		if ctx.Err() != nil {
			break
		}
		mctx, mcancel := context.WithTimeout(ctx, 5*time.Second)
		// The driver puts a key in the slot of its storage body, which is
		// the key itself here (no braces, no hashing): CLUSTER KEYSLOT
		// of the plain key names it.
		victim, err := masterOf(mctx, c, key)
		mcancel()
		if err != nil {
			t.Fatalf("CLUSTER SLOTS: %v", err)
		}
		port := victim[strings.LastIndexByte(victim, ':')+1:]
		pidb, err := os.ReadFile(filepath.Join(dir, port, "redis.pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
		waiters := failoverWaiters(t, ctx, d, "{"+key+"}w")
		start := history.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill: %v", err)
		}
		kills++
		// Wait for the promotion: another node serves the slot and the
		// cluster is ok again.
		deadline := time.Now().Add(30 * time.Second)
		for {
			mctx, mcancel := context.WithTimeout(ctx, 2*time.Second)
			m, err := masterOf(mctx, c, key)
			mcancel()
			info, _ := exec.Command("redis-cli", "-p", otherPort(addrs, port), "cluster", "info").Output()
			if err == nil && m != victim && strings.Contains(string(info), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no promotion 30s after killing %s", victim)
			}
			time.Sleep(100 * time.Millisecond)
		}
		promoted := history.Now()
		rec.Event(90+i, history.Failover, start, promoted)
		t.Logf("killed master %s (shard of %s): promotion after %v", victim, key, time.Duration(promoted-start).Round(time.Millisecond))
		waiters(time.Duration(promoted - start))
		sleepCtx(ctx, 1500*time.Millisecond)
		if out, err := exec.Command("redis-server", filepath.Join(dir, port, "redis.conf")).CombinedOutput(); err != nil {
			t.Fatalf("restart %s: %v %s", port, err, out)
		}
		deadline = time.Now().Add(60 * time.Second)
		for !clusterOK(addrs) {
			if time.Now().After(deadline) {
				t.Fatalf("cluster not healthy 60s after restarting %s", port)
			}
			time.Sleep(200 * time.Millisecond)
		}
		sleepCtx(ctx, time.Second)
	}
	cancel()
	counts := <-done
	ops, errs := counts.Snapshot()
	t.Logf("failover: %d masters killed; in-process clients made %d calls, errors by code: %s", kills, ops, workload.FormatErrors(errs))
	for _, w := range procs {
		_ = w.cmd.Process.Signal(syscall.SIGINT)
	}
	for _, w := range procs {
		rec.AddOp(w.wait(t, 30*time.Second)...)
	}
	checkHistory(t, "redis-cluster failover", rec.Ops())
}

// failoverWaiters holds key (in the shard about to lose its master) and
// starts three Guard waiters on it (Acquire with a 30s budget, contexts
// without deadline), as `syncguard run --wait 30s` would. The returned
// function waits for them: each must get the lock (issue 16: they used to
// give up on the first backend error, about 2s into a failover).
func failoverWaiters(t *testing.T, ctx context.Context, d *redis.Driver, key string) func(promotion time.Duration) {
	g := syncguard.New(d, syncguard.WithOnReleaseError(func(error, string, string) {}))
	if _, err := g.TryAcquire(ctx, key, syncguard.TTL(3*time.Second)); err != nil {
		t.Errorf("failover waiters: holder: %v", err)
		return func(time.Duration) {}
	}
	start := time.Now()
	type result struct {
		took time.Duration
		err  error
	}
	res := make(chan result, 3)
	for range 3 {
		go func() {
			l, err := g.Acquire(context.Background(), key, syncguard.Timeout(30*time.Second), syncguard.MaxRetries(10_000),
				syncguard.TTL(time.Second))
			took := time.Since(start)
			if err == nil {
				l.Close()
			}
			res <- result{took, err}
		}()
	}
	return func(promotion time.Duration) {
		var took []time.Duration
		for range 3 {
			select {
			case r := <-res:
				if r.err != nil {
					t.Errorf("a waiter with a 30s budget failed during the failover: %v (after %v)", r.err, r.took)
				}
				took = append(took, r.took.Round(time.Millisecond))
			case <-time.After(40 * time.Second):
				t.Error("a waiter with a 30s budget had not returned 40s after the failover began")
				return
			}
		}
		t.Logf("waiters (30s budget) on %s through a failover (promotion after %v): returned after %v", key, promotion.Round(time.Millisecond), took)
	}
}

func otherPort(addrs []string, not string) string {
	for _, a := range addrs {
		if p := a[strings.LastIndexByte(a, ':')+1:]; p != not {
			return p
		}
	}
	return not
}
