// Command worker is the reliability suite's worker process: it runs the
// history workload (or the paused-holder script) against one Redis,
// PostgreSQL or Firestore store and prints its recorded operations as JSON lines on
// stdout, so that the test merges histories of several OS processes.
//
// Output lines are JSON objects with one of the fields
//
//	"held": {"lockID": …, "fence": …}   (pause mode: the lock is held)
//	"op":   history.Op
//	"done": {"ops": n, "errors": {code: n}, "problems": […]}
//
// The reliability tests build it with go build -race; it is not a tool for
// users.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	gfirestore "cloud.google.com/go/firestore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/firestore"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

func main() {
	var (
		backend    = flag.String("driver", "redis", "redis, postgres or firestore")
		addrs      = flag.String("addrs", "127.0.0.1:6379", "Redis addresses (comma-separated; more than one: cluster)")
		prefix     = flag.String("prefix", "", "Redis key prefix")
		dsn        = flag.String("dsn", "", "PostgreSQL URL")
		schema     = flag.String("schema", "", "PostgreSQL schema (search_path)")
		pgTables   = flag.String("pg-tables", "", "PostgreSQL table name prefix (tables <prefix>_locks, _fences, _records, _rate), for a pooler that drops search_path")
		listenDSN  = flag.String("listen-dsn", "", "PostgreSQL URL of the LISTEN connection (the server itself, behind a pooler); with it, statements run in QueryExecModeExec, nothing prepared")
		fsProject  = flag.String("fs-project", "demo-test", "Firestore project (the emulator: FIRESTORE_EMULATOR_HOST)")
		fsSuffix   = flag.String("fs-suffix", "", "Firestore collection name suffix (collections locks_<suffix>, fences_, records_, rate_, permits_)")
		mode       = flag.String("mode", "history", "history or pause")
		clients    = flag.Int("clients", 2, "concurrent clients")
		clientBase = flag.Int("client-base", 100, "id of the first client")
		duration   = flag.Duration("duration", 3*time.Second, "run time (history mode)")
		ttl        = flag.Duration("ttl", time.Second, "lock TTL")
		opTimeout  = flag.Duration("op-timeout", 2*time.Second, "deadline of each call")
		keys       = flag.String("keys", "k0,k1", "keys (comma-separated)")
		seed       = flag.Uint64("seed", 1, "random seed")
		staleEvery = flag.Int("stale-every", 0, "one in N acquisitions writes after its TTL (0: never)")
	)
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// SIGINT/SIGTERM end the workload early; the history is still printed.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var b driver.Backend
	notApplied := workload.NeverSent
	switch *backend {
	case "redis":
		list := strings.Split(*addrs, ",")
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: list, DisableCache: true, ShuffleInit: len(list) > 1})
		if err != nil {
			fail("redis client: %v", err)
		}
		defer c.Close()
		d, err := redis.New(c, redis.WithKeyPrefix(*prefix))
		if err != nil {
			fail("redis driver: %v", err)
		}
		defer d.Close()
		b = d
		notApplied = RedisNotApplied
	case "postgres":
		cfg, err := pgxpool.ParseConfig(*dsn)
		if err != nil {
			fail("dsn: %v", err)
		}
		if *schema != "" {
			cfg.ConnConfig.RuntimeParams["search_path"] = *schema
		}
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		var opts []postgres.Option
		if *pgTables != "" {
			opts = append(opts, postgres.WithTables(PGTables(*pgTables)))
		}
		if *listenDSN != "" {
			// Behind PgBouncer in transaction-pooling mode, as
			// docs/postgres.md recommends.
			cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
			lc, err := pgx.ParseConfig(*listenDSN)
			if err != nil {
				fail("listen-dsn: %v", err)
			}
			opts = append(opts, postgres.WithListenConfig(lc))
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			fail("pool: %v", err)
		}
		defer pool.Close()
		d, err := postgres.New(pool, opts...)
		if err != nil {
			fail("postgres driver: %v", err)
		}
		defer d.Close()
		b = d
		notApplied = PGNotApplied
	case "firestore":
		c, err := gfirestore.NewClient(ctx, *fsProject)
		if err != nil {
			fail("firestore client: %v", err)
		}
		defer c.Close()
		d, err := firestore.New(c, append(FirestoreCollections(*fsSuffix), firestore.WithMaxAttempts(25))...)
		if err != nil {
			fail("firestore driver: %v", err)
		}
		defer d.Close()
		b = d
	default:
		fail("unknown driver %q", *backend)
	}

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	rec := &history.Recorder{}
	var (
		ops      int
		errs     map[string]int
		problems []string
	)
	switch *mode {
	case "history":
		counts, p := workload.Run(ctx, b, rec, workload.Config{
			Keys: strings.Split(*keys, ","), Clients: *clients, ClientBase: *clientBase,
			Duration: *duration, TTL: *ttl, OpTimeout: *opTimeout, Seed: *seed, StaleEvery: *staleEvery,
			NotApplied: notApplied,
		})
		ops, errs = counts.Snapshot()
		problems = p
	case "pause":
		ops, errs, problems = pause(ctx, b, rec, enc, out, strings.Split(*keys, ",")[0], *clientBase, *ttl, *opTimeout)
	default:
		fail("unknown mode %q", *mode)
	}
	for _, op := range rec.Ops() {
		_ = enc.Encode(map[string]any{"op": op})
	}
	_ = enc.Encode(map[string]any{"done": map[string]any{"ops": ops, "errors": errs, "problems": problems}})
}

// pause acquires key, writes with its fence, announces the lock and then
// keeps writing with that fence every 20 ms. The test stops this process
// (SIGSTOP) past the TTL, lets another client take the key and write, and
// resumes it (SIGCONT); the worker notices the gap, makes ten more writes
// (all must be refused: their fence is stale), tries to release (must
// fail) and ends. A hard deadline of 60 s bounds it.
func pause(ctx context.Context, b driver.Backend, rec *history.Recorder, enc *json.Encoder, out *bufio.Writer, key string, id int, ttl, opTimeout time.Duration) (int, map[string]int, []string) {
	errs := map[string]int{}
	var problems []string
	ops := 0
	call := func(kind history.Kind, f func(ctx context.Context) (history.Output, error), in history.Input) history.Output {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		in.Kind = kind
		c := history.Now()
		o, err := f(octx)
		r := history.Now()
		ops++
		if err != nil {
			errs[driver.CodeOf(err).String()]++
			o = history.Output{Unknown: true, Err: driver.CodeOf(err).String()}
		}
		rec.Add(id, in, o, c, r)
		return o
	}
	var lockID string
	var fence syncguard.Fence
	deadline := time.Now().Add(60 * time.Second)
	for lockID == "" {
		if time.Now().After(deadline) {
			return ops, errs, append(problems, "could not acquire "+key)
		}
		o := call(history.Acquire, func(ctx context.Context) (history.Output, error) {
			r, err := b.Acquire(ctx, key, ttl)
			return history.Output{OK: r.Acquired, LockID: r.LockID, Fence: uint64(r.Fence), ExpMs: r.ExpiresAtMs}, err
		}, history.Input{Key: key, TTLMs: ttl.Milliseconds()})
		if o.OK && !o.Unknown {
			lockID, fence = o.LockID, syncguard.Fence(o.Fence)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	seq := 0
	put := func() history.Output {
		seq++
		val := fmt.Sprintf("paused-%d", seq)
		return call(history.Put, func(ctx context.Context) (history.Output, error) {
			r, err := b.PutRecord(ctx, workload.RecordName(key), fence, []byte(val), 0)
			return history.Output{OK: r.Stored, Fence: uint64(r.Fence)}, err
		}, history.Input{Key: key, Fence: uint64(fence), Value: val})
	}
	put()
	// The stop may land right after the announcement: measure the gap
	// from before it.
	last := time.Now()
	_ = enc.Encode(map[string]any{"held": map[string]any{"lockID": lockID, "fence": uint64(fence)}})
	_ = out.Flush()
	after := -1
	for after < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if gap := time.Since(last); gap > ttl && after < 0 {
			after = 0 // resumed after a pause longer than the TTL
		}
		last = time.Now()
		put()
		if after >= 0 {
			after++
		}
	}
	call(history.Release, func(ctx context.Context) (history.Output, error) {
		r, err := b.Release(ctx, "", lockID)
		return history.Output{OK: r.OK}, err
	}, history.Input{Key: key, LockID: lockID})
	if after < 0 {
		problems = append(problems, "never paused")
	}
	return ops, errs, problems
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "worker: "+format+"\n", args...)
	os.Exit(2)
}

// PGTables are the tables of -pg-tables prefix (the reliability tests
// name them alike).
func PGTables(prefix string) postgres.Tables {
	return postgres.Tables{Locks: prefix + "_locks", Fences: prefix + "_fences", Records: prefix + "_records", Rate: prefix + "_rate"}
}

// RedisNotApplied: besides calls never sent, a Redis error reply
// (CLUSTERDOWN, TRYAGAIN, MOVED, READONLY, …) means the script did not run.
func RedisNotApplied(err error) bool {
	if workload.NeverSent(err) {
		return true
	}
	var re *rueidis.RedisError
	return errors.As(err, &re) && re != nil && !re.IsNil()
}

// PGNotApplied: besides calls never sent, a server error (PgError: the
// transaction was rolled back) or an error pgconn marks safe to retry
// (nothing was sent) means no effect. The driver's errors do not claim
// SafeToRetry for "conn closed", which pgx also reports for a batch sent
// and then cut (drivers/postgres safeToRetry).
func PGNotApplied(err error) bool {
	if workload.NeverSent(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// FirestoreCollections selects the collections of suffix s: locks_<s>,
// fences_<s>, records_<s>, rate_<s> and permits_<s>.
func FirestoreCollections(s string) []firestore.Option {
	return []firestore.Option{
		firestore.WithCollections("locks_"+s, "fences_"+s),
		firestore.WithRecordCollection("records_" + s),
		firestore.WithRateCollection("rate_" + s),
		firestore.WithPermitCollection("permits_" + s),
	}
}
