package reliability

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard/internal/drivertest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"

	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// Environment (as for the driver tests; scripts/test sets them):
//
//	SYNCGUARD_REDIS_ADDR       single Redis node (default 127.0.0.1:6379)
//	SYNCGUARD_REDIS_CLUSTER    seeds of a Redis Cluster (history check on a cluster)
//	SYNCGUARD_POSTGRES_URL     PostgreSQL (default postgres://postgres@127.0.0.1:5432/test)
//	FIRESTORE_EMULATOR_HOST    the Firestore emulator (Firestore histories)
//	SYNCGUARD_PG_BINDIR        PostgreSQL server binaries for the private crash instance
//	SYNCGUARD_REQUIRE_BACKENDS=1  a missing service fails instead of skipping
//	SYNCGUARD_RELIABILITY_CLUSTER_PORT  first of six free ports for the private
//	                           failover cluster (default 7200)
//	SYNCGUARD_RELIABILITY_MATRIX_CLUSTER_PORT  first of six free ports for the
//	                           fault matrix's private cluster (default 7300)
//	SYNCGUARD_PRIVATE_REDIS_PORT  base of the private redis-servers' ports
//	                           (default 6400): the fault matrix uses +1, the
//	                           recovery test +2, the idempotency test +3
//	                           (+0 is drivers/redis's bound test)
//	TEST_ARTIFACTS             directory for porcupine visualisations (default t.TempDir())

var soakFlag = flag.Duration("soak", 0, "soak duration per driver (default: a short bounded soak)")

// workerBin is the worker program, built with -race by TestMain.
var workerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "syncguard-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-race", "-o", workerBin, "./internal/worker")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the worker program:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(leakOptions...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// leakOptions: rueidis's background goroutines (drivertest), toxiproxy,
// which tears links down asynchronously after Proxy.Stop, and the
// Firestore client's (fsLeakOptions).
var leakOptions = append(append(drivertest.GoleakOptions(),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
), fsLeakOptions...)

// privateRedisPort is the port of private redis-server i (1 to 3) of this
// package: SYNCGUARD_PRIVATE_REDIS_PORT (default 6400) plus i.
func privateRedisPort(i int) int {
	base := 6400
	if v, err := strconv.Atoi(os.Getenv("SYNCGUARD_PRIVATE_REDIS_PORT")); err == nil && v > 0 {
		base = v
	}
	return base + i
}

func requireBackends() bool { return os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" }

// needBackend skips the test, or fails it under SYNCGUARD_REQUIRE_BACKENDS=1.
func needBackend(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireBackends() {
		t.Fatalf("backend required but unavailable: "+format, args...)
	}
	t.Skipf("backend unavailable (set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead): "+format, args...)
}

func token() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func artifactsDir(t *testing.T) string {
	if d := os.Getenv("TEST_ARTIFACTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// checkHistory checks ops with porcupine and fails t on a violation,
// logging where the visualisation is.
func checkHistory(t *testing.T, name string, ops []history.Op) history.Result {
	t.Helper()
	start := time.Now()
	res := history.Check(ops, time.Minute, artifactsDir(t), t.Name()+"-"+name)
	t.Logf("%s: %v; porcupine: %s in %v", name, res.Stats, res.Outcome, time.Since(start).Round(time.Millisecond))
	for _, v := range res.Violations {
		t.Errorf("%s: %s", name, v)
	}
	if res.Outcome != "Ok" {
		t.Errorf("%s: history not linearizable (%s); visualisation: %s", name, res.Outcome, res.Visualization)
	}
	if res.Stats.Acquired == 0 || res.Stats.Stored == 0 {
		t.Errorf("%s: no successful acquisitions or writes recorded: %v", name, res.Stats)
	}
	return res
}

// ---- Redis ----

func redisAddr() string {
	if a := os.Getenv("SYNCGUARD_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func clusterAddrs() []string {
	if s := os.Getenv("SYNCGUARD_REDIS_CLUSTER"); s != "" {
		return strings.Split(s, ",")
	}
	return nil
}

// redisClient connects to addrs and closes the client when t ends.
func redisClient(t testing.TB, addrs []string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true, ShuffleInit: len(addrs) > 1})
	if err != nil {
		needBackend(t, "Redis at %v: %v", addrs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		needBackend(t, "Redis at %v: %v", addrs, err)
	}
	t.Cleanup(c.Close)
	return c
}

// redisDriver returns a driver over c with a fresh prefix whose keys are
// deleted when t ends.
func redisDriver(t testing.TB, c rueidis.Client, prefix string) *redis.Driver {
	t.Helper()
	d, err := redis.New(c, redis.WithKeyPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		deletePrefix(c, prefix)
	})
	return d
}

func deletePrefix(c rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(prefix+":*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				break
			}
			for _, k := range e.Elements {
				_ = c.Do(ctx, c.B().Del().Key(k).Build()).Error()
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

// ---- PostgreSQL ----

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func pgDSN() string {
	if v := os.Getenv("SYNCGUARD_POSTGRES_URL"); v != "" {
		return v
	}
	return defaultDSN
}

// pgSchema creates a fresh schema with the driver's tables on dsn and
// drops it when t ends; it returns the schema's name.
func pgSchema(t testing.TB, dsn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		needBackend(t, "PostgreSQL at %s: %v", dsn, err)
	}
	schema := "sgrel_" + token()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return // a private server may be gone already
		}
		defer admin.Close(ctx)
		_, _ = admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	pool := pgPool(t, dsn, schema, nil)
	if err := postgres.Setup(ctx, pool); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return schema
}

// pgPool opens a pool on schema, closed when t ends.
func pgPool(t testing.TB, dsn, schema string, mod func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	if mod != nil {
		mod(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func pgDriver(t testing.TB, pool *pgxpool.Pool) *postgres.Driver {
	t.Helper()
	d, err := postgres.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// ---- worker processes ----

// workerProc is a running worker process.
type workerProc struct {
	cmd  *exec.Cmd
	held chan heldMsg
	done chan struct{}

	mu       sync.Mutex
	ops      []history.Op
	summary  map[string]any
	stderr   strings.Builder
	parseErr error
}

type heldMsg struct {
	LockID string `json:"lockID"`
	Fence  uint64 `json:"fence"`
}

// startWorker starts the worker program with args; it is killed when t
// ends if still running.
func startWorker(t *testing.T, args ...string) *workerProc {
	t.Helper()
	w := &workerProc{held: make(chan heldMsg, 1), done: make(chan struct{})}
	w.cmd = exec.Command(workerBin, args...)
	w.cmd.Stderr = &w.stderr
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatalf("starting worker: %v", err)
	}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Op   *history.Op    `json:"op"`
				Held *heldMsg       `json:"held"`
				Done map[string]any `json:"done"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				w.mu.Lock()
				w.parseErr = fmt.Errorf("worker output %q: %w", sc.Text(), err)
				w.mu.Unlock()
				continue
			}
			w.mu.Lock()
			switch {
			case line.Op != nil:
				w.ops = append(w.ops, *line.Op)
			case line.Held != nil:
				w.held <- *line.Held
			case line.Done != nil:
				w.summary = line.Done
			}
			w.mu.Unlock()
		}
		_ = w.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	})
	return w
}

// wait waits for the worker to exit (at most timeout) and returns its
// operations; it fails t on a crash, a parse error or reported problems.
func (w *workerProc) wait(t *testing.T, timeout time.Duration) []history.Op {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		_ = w.cmd.Process.Kill()
		<-w.done
		t.Fatalf("worker did not finish within %v; stderr: %s", timeout, w.stderr.String())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.parseErr != nil {
		t.Error(w.parseErr)
	}
	if w.cmd.ProcessState == nil || !w.cmd.ProcessState.Success() {
		t.Errorf("worker failed: %v; stderr: %s", w.cmd.ProcessState, w.stderr.String())
	}
	if w.summary == nil {
		t.Errorf("worker printed no summary; stderr: %s", w.stderr.String())
	} else if p, _ := w.summary["problems"].([]any); len(p) > 0 {
		t.Errorf("worker problems: %v", p)
	}
	if w.stderr.Len() > 0 && strings.Contains(w.stderr.String(), "DATA RACE") {
		t.Errorf("worker: %s", w.stderr.String())
	}
	return w.ops
}

// redisNotApplied: besides calls never sent, a Redis error reply
// (CLUSTERDOWN, TRYAGAIN, MOVED, READONLY, …) means the script did not run.
func redisNotApplied(err error) bool {
	if workload.NeverSent(err) {
		return true
	}
	var re *rueidis.RedisError
	return errors.As(err, &re) && re != nil && !re.IsNil()
}

// pgNotApplied: besides calls never sent, a server error (PgError: the
// transaction was rolled back) or an error pgconn marks safe to retry
// (nothing was sent) means no effect. The driver's errors do not claim
// SafeToRetry for "conn closed", which pgx also reports for a batch sent
// and then cut (drivers/postgres safeToRetry).
func pgNotApplied(err error) bool {
	if workload.NeverSent(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}
