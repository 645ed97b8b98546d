package reliability

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncguard/syncguard/internal/pgserver"
	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// The private PostgreSQL server (internal/pgserver) is the one of
// drivers/postgres's crash test: a throw-away initdb'd instance on a free
// loopback port, in its own process group so that SIGKILL reaches every
// backend.

// TestFaultPostgresCrash: goroutine clients and two worker processes run
// the workload on a private PostgreSQL server that is SIGKILLed (the whole
// process group) twice and restarted. PostgreSQL is durable (fsync and
// synchronous_commit on): each crash is a Crash event of the model, which
// keeps every acknowledged acquisition, extension and write and lets only
// a plain release, committed asynchronously by design (docs/postgres.md),
// be undone when no later acquisition of its key made it durable.
func TestFaultPostgresCrash(t *testing.T) {
	t.Parallel()
	p := pgserver.Start(t)
	dsn := p.DSN()
	schema := pgSchema(t, dsn)
	d := pgDriver(t, pgPool(t, dsn, schema, nil))
	cfg := defaultConfig()
	cfg.Duration = time.Hour
	cfg.OpTimeout = 2 * time.Second
	cfg.NotApplied = pgNotApplied
	var rec history.Recorder
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var procs []*workerProc
	for i := range 2 {
		procs = append(procs, startWorker(t, "-driver", "postgres", "-dsn", dsn, "-schema", schema,
			"-clients", "2", "-client-base", strconv.Itoa(100+10*i), "-duration", "90s", "-ttl", cfg.TTL.String(),
			"-keys", strings.Join(cfg.Keys, ","), "-seed", strconv.Itoa(i)))
	}
	done := make(chan *workload.Counts, 1)
	go func() {
		counts, problems := workload.Run(ctx, d, &rec, cfg)
		for _, p := range problems {
			t.Errorf("%s", p)
		}
		done <- counts
	}()
	const crashes = 2
	for i := range crashes {
		sleepCtx(ctx, 1500*time.Millisecond)
		start := time.Now()
		p.Kill()
		sleepCtx(ctx, 300*time.Millisecond)
		p.Restart()
		rec.Event(90+i, history.Crash, start.UnixNano(), time.Now().UnixNano())
		t.Logf("SIGKILLed PostgreSQL and restarted it in %v", time.Since(start).Round(time.Millisecond))
	}
	sleepCtx(ctx, 1500*time.Millisecond)
	cancel()
	counts := <-done
	ops, errs := counts.Snapshot()
	t.Logf("postgres crash: %d crashes; in-process clients made %d calls, errors by code: %s", crashes, ops, workload.FormatErrors(errs))
	for _, w := range procs {
		_ = w.cmd.Process.Signal(syscall.SIGINT)
	}
	for _, w := range procs {
		rec.AddOp(w.wait(t, 30*time.Second)...)
	}
	checkHistory(t, "postgres crash", rec.Ops())
}
