package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// demoConfig sizes the race.
type demoConfig struct {
	workers  int
	payments int
	work     time.Duration // simulated payment-provider latency
}

const demoUsage = `Usage: syncguard demo [-workers N] [-payments N] [-work DURATION]

Race N workers over the same payments without and with a lock (in-process
memory driver, no server needed). Exits 0 only if the locked run charged no
payment twice. It takes no arguments.
`

func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	p := newPrinter("demo", stderr, args)
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	cfg := demoConfig{}
	fs.IntVar(&cfg.workers, "workers", 8, "concurrent workers")
	fs.IntVar(&cfg.payments, "payments", 12, "payments to process")
	fs.DurationVar(&cfg.work, "work", 2*time.Millisecond, "simulated latency between reading a payment and charging it")
	if code, done := parseFlags(fs, args, demoUsage, stdout, p); done {
		return code
	}
	if fs.NArg() != 0 {
		return p.fail(usageError("demo takes no arguments"))
	}
	if cfg.workers < 1 || cfg.workers > 1000 || cfg.payments < 1 || cfg.payments > 100000 || cfg.work < 0 || cfg.work > time.Second {
		return p.fail(usageError("-workers must be 1..1000, -payments 1..100000, -work 0..1s"))
	}
	res, err := runDemo(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "syncguard demo:", err)
		return exitFailure
	}
	if res.lockedDoubles != 0 {
		return exitDoubleCh
	}
	return exitOK
}

// ledger is the payment provider: it records every charge.
type ledger struct {
	mu      sync.Mutex
	status  map[string]string // "pending" or "completed"
	charges map[string][]charge
}

type charge struct {
	worker int
	fence  syncguard.Fence
}

func newLedger(n int) *ledger {
	l := &ledger{status: make(map[string]string, n), charges: make(map[string][]charge, n)}
	for i := range n {
		l.status[paymentID(i)] = "pending"
	}
	return l
}

func paymentID(i int) string { return fmt.Sprintf("pay-%03d", i+1) }

func (l *ledger) getStatus(id string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status[id]
}

func (l *ledger) charge(id string, c charge) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.charges[id] = append(l.charges[id], c)
}

func (l *ledger) complete(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status[id] = "completed"
}

// doubles counts payments charged more than once, and all charges.
func (l *ledger) doubles() (doubled, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, cs := range l.charges {
		total += len(cs)
		if len(cs) > 1 {
			doubled++
		}
	}
	return doubled, total
}

// process is the naive handler: read, call the provider, write.
func process(ctx context.Context, l *ledger, id string, worker int, fence syncguard.Fence, work time.Duration) error {
	if l.getStatus(id) != "pending" {
		return nil
	}
	select { // the provider call takes a while
	case <-time.After(work):
	case <-ctx.Done():
		return ctx.Err()
	}
	l.charge(id, charge{worker: worker, fence: fence})
	l.complete(id)
	return nil
}

type demoResult struct {
	unlockedDoubles, lockedDoubles int
}

// race starts all workers at once over the same payments.
func race(ctx context.Context, cfg demoConfig, handle func(ctx context.Context, id string, worker int) error) error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, cfg.workers)
	for w := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range cfg.payments {
				if err := handle(ctx, paymentID(i), w+1); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	return errors.Join(errs...)
}

func runDemo(ctx context.Context, cfg demoConfig, out io.Writer) (demoResult, error) {
	var res demoResult
	fmt.Fprintf(out, "SyncGuard demo: %d workers race to process the same %d payments (in-process memory driver).\n\n", cfg.workers, cfg.payments)

	// Run 1: no lock.
	plain := newLedger(cfg.payments)
	err := race(ctx, cfg, func(ctx context.Context, id string, worker int) error {
		return process(ctx, plain, id, worker, 0, cfg.work)
	})
	if err != nil {
		return res, err
	}
	doubled, total := plain.doubles()
	res.unlockedDoubles = doubled
	fmt.Fprintf(out, "Run 1, without a lock:  %3d charges, %d of %d payments charged twice or more\n", total, doubled, cfg.payments)

	// Run 2: each payment under a SyncGuard lock.
	g := syncguard.New(memory.New())
	locked := newLedger(cfg.payments)
	// Generous limits: with many workers a payment's lock is queued for up
	// to workers × work.
	timeout := 10*time.Second + time.Duration(cfg.workers)*cfg.work*4
	err = race(ctx, cfg, func(ctx context.Context, id string, worker int) error {
		return g.Do(ctx, "payment:"+id, func(ctx context.Context, l *syncguard.Lease[memory.Capabilities]) error {
			return process(ctx, locked, id, worker, syncguard.FenceOf(l), cfg.work)
		}, syncguard.Timeout(timeout), syncguard.MaxRetries(1000), syncguard.RetryDelay(time.Millisecond))
	})
	if err != nil {
		return res, err
	}
	doubled, total = locked.doubles()
	res.lockedDoubles = doubled
	fmt.Fprintf(out, "Run 2, with SyncGuard:   %3d charges, %d of %d payments charged twice or more\n\n", total, doubled, cfg.payments)

	ids := make([]string, 0, len(locked.charges))
	for id := range locked.charges {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintln(out, "Winning charges of run 2 (payment, worker, fence):")
	for _, id := range ids {
		for _, c := range locked.charges[id] {
			fmt.Fprintf(out, "  %s  worker %-3d  fence %s\n", id, c.worker, c.fence)
		}
	}
	fmt.Fprintln(out)
	if doubled == 0 {
		fmt.Fprintln(out, "Result: with the lock, every payment was charged exactly once.")
	} else {
		fmt.Fprintln(out, "Result: FAILED — the locked run charged a payment twice.")
	}
	return res, nil
}
