package reliability

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/internal/faultproxy"
	"github.com/syncguard/syncguard/internal/pgserver"
	"github.com/syncguard/syncguard/pgfence"
)

// The fault matrix (issue 16): every entry point on every backend returns
// within its bound, with ServiceUnavailable or NetworkTimeout, when the
// backend is stopped (connections refused), blackholed (a proxy that stops
// forwarding without closing: toxiproxy's timeout toxic with timeout 0) or
// slow (latency above the bound), whether the caller's context has a
// deadline or not; afterwards the next call succeeds without restarting
// anything, and no goroutine is left behind.
//
// The drivers get a small call timeout (matrixBound) so that the matrix
// runs in seconds; the clients are otherwise built as the docs show.

// matrixBound is the drivers' call timeout in the matrix.
const matrixBound = 400 * time.Millisecond

// matrixSlack is what a call may take beyond its bound: scheduling on a
// small, shared CI machine under -race, with the other packages' tests
// running (measured alone: at most 20 ms).
const matrixSlack = 500 * time.Millisecond

// matrixTTL is the TTL of the leases the matrix holds across a fault: it
// bounds the background release retries (and so the leak check's wait).
const matrixTTL = 2 * time.Second

// cell is one measured call.
type cell struct {
	backend, fault, entry string
	deadline              bool // the caller's context had a deadline
	took, bound           time.Duration
	code                  driver.Code
	err                   error
}

// entry is one entry point, ready to be called during a fault.
type entry struct {
	name  string
	bound time.Duration
	call  func(ctx context.Context) error
}

type matrix struct {
	mu       sync.Mutex
	cells    []cell
	recovery []string
}

func (m *matrix) add(c cell) {
	m.mu.Lock()
	m.cells = append(m.cells, c)
	m.mu.Unlock()
}

func (m *matrix) recovered(s string) {
	m.mu.Lock()
	m.recovery = append(m.recovery, s)
	m.mu.Unlock()
}

// entries builds the entry points over g (leases, mutex and records are
// set up now, while the backend is healthy); tag keeps the keys of two
// builds apart. fenced, if not nil, is a FencedStore on the backend (pgfence).
func entries[C driver.Fenced](t *testing.T, g *syncguard.Guard[C], rs driver.RateStore, tag string, fenced syncguard.FencedStore) []entry {
	t.Helper()
	ctx := context.Background()
	lease := func(key string) *syncguard.Lease[C] {
		l, err := g.Acquire(ctx, tag+key, syncguard.TTL(matrixTTL))
		if err != nil {
			t.Fatalf("setup: Acquire %s: %v", key, err)
		}
		return l
	}
	relL, extL, fwL := lease("rel"), lease("ext"), lease("fw")
	m, err := syncguard.NewMutex(g, tag+"mx", syncguard.WithAcquireOptions(syncguard.TTL(matrixTTL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LockContext(ctx); err != nil {
		t.Fatalf("setup: Lock: %v", err)
	}
	var tryErr error
	m2, err := syncguard.NewMutex(g, tag+"mx2", syncguard.WithOnError(func(err error) { tryErr = err }))
	if err != nil {
		t.Fatal(err)
	}
	once, err := syncguard.NewOncePerKey[string](g)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := syncguard.NewRateLimiter(rs, syncguard.RateLimit{Limit: 1000, Period: time.Second, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := syncguard.NewFencedWriter(g)
	if err != nil {
		t.Fatal(err)
	}
	es := []entry{
		{"Guard.TryAcquire", matrixBound, func(ctx context.Context) error {
			_, err := g.TryAcquire(ctx, tag+"try")
			return err
		}},
		{"Guard.Acquire (Timeout = bound)", 2 * matrixBound, func(ctx context.Context) error {
			_, err := g.Acquire(ctx, tag+"acq", syncguard.Timeout(matrixBound), syncguard.RetryDelay(50*time.Millisecond))
			return err
		}},
		{"Lease.Release", matrixBound, func(ctx context.Context) error { _, err := relL.Release(ctx); return err }},
		{"Lease.Extend", matrixBound, func(ctx context.Context) error { _, err := extL.Extend(ctx, matrixTTL); return err }},
		{"Mutex.UnlockContext", matrixBound, m.UnlockContext},
		{"Mutex.TryLock", matrixBound, func(context.Context) error {
			if m2.TryLock() {
				return fmt.Errorf("TryLock succeeded during the fault")
			}
			return tryErr
		}},
		{"OncePerKey.Do", matrixBound, func(ctx context.Context) error {
			_, err := once.Do(ctx, tag+"once", func(context.Context) (string, error) { return "done", nil })
			return err
		}},
		{"RateLimiter.Allow", matrixBound, func(ctx context.Context) error { _, err := lim.Allow(ctx, tag+"rate"); return err }},
		{"FencedWriter.Write", matrixBound, func(ctx context.Context) error {
			return fw.Write(ctx, fwL, tag+"res", []byte("v"))
		}},
	}
	if fenced != nil {
		pfw, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(fenced))
		if err != nil {
			t.Fatal(err)
		}
		pl := lease("pgf")
		es = append(es, entry{"pgfence Store (FencedWriter)", matrixBound, func(ctx context.Context) error {
			return pfw.Write(ctx, pl, tag+"res", []byte("v"))
		}})
	}
	return es
}

// runCell measures every entry point of two builds (one called with a
// context without deadline, one with a distant deadline) while inject's
// fault lasts, then heals it and measures the time to the first
// successful probe.
func runCell(t *testing.T, mx *matrix, backend, fault string, build func(tag string) []entry, inject, heal func(), probe func(ctx context.Context) error) {
	t.Helper()
	variants := []struct {
		deadline bool
		es       []entry
	}{{false, build("nd:")}, {true, build("dl:")}}
	inject()
	var wg sync.WaitGroup
	for _, v := range variants {
		for _, e := range v.es {
			wg.Go(func() {
				ctx := context.Background()
				if v.deadline {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Minute)
					defer cancel()
				}
				start := time.Now()
				done := make(chan error, 1)
				go func() { done <- e.call(ctx) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					t.Errorf("%s/%s/%s: no answer after 30s (hang)", backend, fault, e.name)
					return
				}
				c := cell{backend: backend, fault: fault, entry: e.name, deadline: v.deadline,
					took: time.Since(start), bound: e.bound, code: driver.CodeOf(err), err: err}
				mx.add(c)
				if c.code != driver.ServiceUnavailable && c.code != driver.NetworkTimeout {
					t.Errorf("%s/%s/%s (deadline %v): %v (code %v); want ServiceUnavailable or NetworkTimeout",
						backend, fault, e.name, v.deadline, err, c.code)
				}
				if c.took > c.bound+matrixSlack {
					t.Errorf("%s/%s/%s (deadline %v): took %v; bound %v (+%v slack)",
						backend, fault, e.name, v.deadline, c.took, c.bound, matrixSlack)
				}
			})
		}
	}
	wg.Wait()
	heal() // a stopped server is running (accepting connections) again
	healed := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := probe(ctx)
		cancel()
		if err == nil {
			mx.recovered(fmt.Sprintf("%s/%s: first success %v after the heal", backend, fault, time.Since(healed).Round(time.Millisecond)))
			return
		}
		if time.Since(healed) > 15*time.Second {
			t.Errorf("%s/%s: no success within 15s after the heal: %v", backend, fault, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// probe is one successful acquisition and release.
func probe[C driver.Capabilities](g *syncguard.Guard[C]) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		l, err := g.TryAcquire(ctx, "probe:"+token())
		if err != nil {
			return err
		}
		_, err = l.Release(ctx)
		return err
	}
}

// ---- private redis-server ----

type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	exit chan struct{}
}

func startPrivateRedis(t *testing.T, port int) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		needBackend(t, "redis-server: %v", err)
	}
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	// The port must be free: start waits for the port to answer, and
	// must not mistake another server for its own.
	ln, err := net.Listen("tcp", r.addr())
	if err != nil {
		t.Fatalf("port %d for a private redis-server is taken: %v", port, err)
	}
	ln.Close()
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exit = make(chan struct{})
	cmd, exit := r.cmd, r.exit
	go func() { _ = cmd.Wait(); close(exit) }()
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", r.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if i > 200 {
			r.t.Fatalf("redis-server on %s did not come up: %v", r.addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill SIGKILLs the server and waits until it is gone.
func (r *privateRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Kill)
	<-r.exit
	r.cmd = nil
}

// docsRedisClient is the client docs/redis.md shows (retries on).
func docsRedisClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func boundedRedisGuard(t *testing.T, c rueidis.Client) (*syncguard.Guard[redis.Capabilities], *redis.Driver) {
	t.Helper()
	d, err := redis.New(c, redis.WithKeyPrefix("sgm"+token()), redis.WithCallTimeout(matrixBound))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return syncguard.New(d, syncguard.WithOnReleaseError(func(error, string, string) {})), d
}

func boundedPGGuard(t *testing.T, pool *pgxpool.Pool) (*syncguard.Guard[postgres.Capabilities], syncguard.FencedStore, *postgres.Driver) {
	t.Helper()
	d, err := postgres.New(pool, postgres.WithCallTimeout(matrixBound))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	st, err := pgfence.NewStore(pool, "sgm_fenced", pgfence.WithCallTimeout(matrixBound))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	return syncguard.New(d, syncguard.WithOnReleaseError(func(error, string, string) {})), st, d
}

// proxied pool: a pool on schema whose connections go through addr.
func proxiedPool(t *testing.T, schema, addr string) *pgxpool.Pool {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return pgPool(t, pgDSN(), schema, func(c *pgxpool.Config) {
		c.ConnConfig.Host, c.ConnConfig.Port = host, uint16(p)
	})
}

const (
	blackholeToxic = `{"name":"bh","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`
	slowToxic      = `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":%d}}`
)

// TestFaultMatrix runs the matrix on Redis (single node) and PostgreSQL.
// The Firestore emulator's rows are in drivers/firestore (a module of its
// own): TestFaultMatrixFirestore.
func TestFaultMatrix(t *testing.T) {
	// Not parallel: the leak check compares with the goroutines at its
	// start, so other tests must not run meanwhile.
	base := goleak.IgnoreCurrent()
	mx := &matrix{}
	t.Cleanup(func() {
		// Abandoned requests end within the drivers' abandon grace (5s
		// for Redis) and background releases at their leases' expiry.
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := goleak.Find(append(slices.Clone(leakOptions), base)...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left 20s after the matrix: %v", err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		mx.report(t)
	})
	slow := fmt.Sprintf(slowToxic, (2 * matrixBound).Milliseconds())

	t.Run("redis/stopped", func(t *testing.T) {
		t.Parallel()
		r := startPrivateRedis(t, privateRedisPort(1))
		g, rd := boundedRedisGuard(t, docsRedisClient(t, r.addr()))
		runCell(t, mx, "Redis", "stopped", func(tag string) []entry { return entries(t, g, rd, tag, nil) },
			r.kill, r.start, probe(g))
	})
	for _, f := range []struct{ name, toxic string }{{"blackholed", blackholeToxic}, {"slow", slow}} {
		t.Run("redis/"+f.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, redisAddr())
			g, rd := boundedRedisGuard(t, docsRedisClient(t, p.addr()))
			runCell(t, mx, "Redis", f.name, func(tag string) []entry { return entries(t, g, rd, tag, nil) },
				func() { p.toxic(t, f.toxic) }, p.heal, probe(g))
		})
	}
	t.Run("redis-cluster", func(t *testing.T) {
		t.Parallel()
		matrixCluster(t, mx, slow)
	})
	t.Run("postgres/stopped", func(t *testing.T) {
		t.Parallel()
		s := pgserver.Start(t)
		schema := pgSchema(t, s.DSN())
		g, st, rd := boundedPGGuard(t, pgPool(t, s.DSN(), schema, nil))
		runCell(t, mx, "PostgreSQL", "stopped", func(tag string) []entry { return entries(t, g, rd, tag, st) },
			s.Kill, s.Restart, probe(g))
	})
	for _, f := range []struct{ name, toxic string }{{"blackholed", blackholeToxic}, {"slow", slow}} {
		t.Run("postgres/"+f.name, func(t *testing.T) {
			t.Parallel()
			schema := pgSchema(t, pgDSN())
			p := startProxy(t, pgHostPort())
			g, st, rd := boundedPGGuard(t, proxiedPool(t, schema, p.addr()))
			runCell(t, mx, "PostgreSQL", f.name, func(tag string) []entry { return entries(t, g, rd, tag, st) },
				func() { p.toxic(t, f.toxic) }, p.heal, probe(g))
		})
	}
}

// matrixCluster runs the Redis Cluster rows on a private 3+3 cluster
// (ports SYNCGUARD_RELIABILITY_MATRIX_CLUSTER_PORT, default 7300, to
// +5): stopped is every node SIGKILLed (then restarted from its
// nodes.conf); blackholed and slow go through a faultproxy.Pool that the
// client dials every node through (rueidis's DialCtxFn), since a cluster
// client connects to the nodes it learns of, not just its seeds.
func matrixCluster(t *testing.T, mx *matrix, _ string) {
	base := 7300
	if v := os.Getenv("SYNCGUARD_RELIABILITY_MATRIX_CLUSTER_PORT"); v != "" {
		base, _ = strconv.Atoi(v)
	}
	dir, addrs := privateClusterAt(t, base)
	t.Run("stopped", func(t *testing.T) {
		g, rd := boundedRedisGuard(t, docsClusterClient(t, addrs, nil))
		kill := func() {
			for _, a := range addrs {
				port := a[strings.LastIndexByte(a, ':')+1:]
				pidb, err := os.ReadFile(filepath.Join(dir, port, "redis.pid"))
				if err != nil {
					t.Error(err)
					continue
				}
				pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			for _, a := range addrs { // wait until every port refuses
				for i := 0; i < 200; i++ {
					c, err := net.DialTimeout("tcp", a, 50*time.Millisecond)
					if err != nil {
						break
					}
					c.Close()
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		restart := func() {
			for _, a := range addrs {
				port := a[strings.LastIndexByte(a, ':')+1:]
				if out, err := exec.Command("redis-server", filepath.Join(dir, port, "redis.conf")).CombinedOutput(); err != nil {
					t.Fatalf("restart %s: %v %s", port, err, out)
				}
			}
			deadline := time.Now().Add(60 * time.Second)
			for !clusterOK(addrs) {
				if time.Now().After(deadline) {
					t.Fatal("cluster not healthy 60s after the restart")
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		runCell(t, mx, "Redis Cluster", "stopped", func(tag string) []entry { return entries(t, g, rd, tag, nil) },
			kill, restart, probe(g))
	})
	for _, f := range []struct {
		name         string
		inject, heal func(*faultproxy.Pool)
	}{
		{"blackholed", func(p *faultproxy.Pool) { p.Blackhole(true) }, func(p *faultproxy.Pool) { p.Blackhole(false) }},
		{"slow", func(p *faultproxy.Pool) { p.Slow(2 * matrixBound) }, func(p *faultproxy.Pool) { p.Slow(0) }},
	} {
		t.Run(f.name, func(t *testing.T) {
			pool := faultproxy.NewPool()
			t.Cleanup(pool.Close) // after the client's clean-up
			g, rd := boundedRedisGuard(t, docsClusterClient(t, addrs, pool))
			runCell(t, mx, "Redis Cluster", f.name, func(tag string) []entry { return entries(t, g, rd, tag, nil) },
				func() { f.inject(pool) }, func() { f.heal(pool) }, probe(g))
		})
	}
}

// docsClusterClient is docs/redis.md's client on the cluster's seeds;
// with a pool, every connection goes through it.
func docsClusterClient(t *testing.T, addrs []string, pool *faultproxy.Pool) rueidis.Client {
	t.Helper()
	opt := rueidis.ClientOption{InitAddress: slices.Clone(addrs), DisableCache: true}
	if pool != nil {
		opt.DialCtxFn = func(ctx context.Context, addr string, _ *net.Dialer, _ *tls.Config) (net.Conn, error) {
			return pool.DialContext(ctx, addr)
		}
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pgHostPort is host:port of the shared PostgreSQL server.
func pgHostPort() string {
	cfg, err := pgxpool.ParseConfig(pgDSN())
	if err != nil {
		return "127.0.0.1:5432"
	}
	return net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
}

// report logs the matrix as a table: per backend, fault and entry point,
// the time and code of the call without deadline / with a deadline.
func (m *matrix) report(t *testing.T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	type k struct{ backend, fault, entry string }
	rows := map[k][2]*cell{}
	var order []k
	for i := range m.cells {
		c := &m.cells[i]
		key := k{c.backend, c.fault, c.entry}
		r, ok := rows[key]
		if !ok {
			order = append(order, key)
		}
		if c.deadline {
			r[1] = c
		} else {
			r[0] = c
		}
		rows[key] = r
	}
	slices.SortFunc(order, func(a, b k) int {
		return strings.Compare(a.backend+"\x00"+a.fault+"\x00"+a.entry, b.backend+"\x00"+b.fault+"\x00"+b.entry)
	})
	var b strings.Builder
	b.WriteString("\n| backend | fault | entry point | bound | no deadline | with deadline |\n|---|---|---|---|---|---|\n")
	f := func(c *cell) string {
		if c == nil {
			return "—"
		}
		return fmt.Sprintf("%d ms %v", c.took.Milliseconds(), c.code)
	}
	for _, key := range order {
		r := rows[key]
		bound := ""
		if r[0] != nil {
			bound = fmt.Sprintf("%d ms", r[0].bound.Milliseconds())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", key.backend, key.fault, key.entry, bound, f(r[0]), f(r[1]))
	}
	slices.Sort(m.recovery)
	for _, s := range m.recovery {
		b.WriteString(s + "\n")
	}
	t.Log(b.String())
}
