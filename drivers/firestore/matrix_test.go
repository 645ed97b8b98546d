package firestore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/faultproxy"
	"github.com/syncguard/syncguard/internal/testkit"
)

// The Firestore rows of the fault matrix (issue 16; the Redis and
// PostgreSQL rows are in ../../reliability, TestFaultMatrix): every entry
// point returns within its bound, with ServiceUnavailable or
// NetworkTimeout, when the emulator is stopped (a private one, SIGKILLed),
// blackholed (a proxy that stops forwarding without closing) or slow
// (latency above the bound), with and without a deadline on the caller's
// context; afterwards the next call succeeds, and no goroutine is left.

// fsBound is the driver's call timeout in the matrix.
const fsBound = 500 * time.Millisecond

// fsSlack is what a call may take beyond its bound (scheduling under -race
// on a small shared machine, with the module's other tests running;
// measured: at most 50 ms).
const fsSlack = 500 * time.Millisecond

const fsTTL = 2 * time.Second

type fsEntry struct {
	name  string
	bound time.Duration
	call  func(ctx context.Context) error
}

func fsEntries(t *testing.T, g *syncguard.Guard[Capabilities], d *Driver, tag string) []fsEntry {
	t.Helper()
	ctx := context.Background()
	lease := func(key string) *syncguard.Lease[Capabilities] {
		l, err := g.Acquire(ctx, tag+key, syncguard.TTL(fsTTL))
		if err != nil {
			t.Fatalf("setup: Acquire %s: %v", key, err)
		}
		return l
	}
	relL, extL, fwL := lease("rel"), lease("ext"), lease("fw")
	m, err := syncguard.NewMutex(g, tag+"mx", syncguard.WithAcquireOptions(syncguard.TTL(fsTTL)))
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
	lim, err := syncguard.NewRateLimiter(d, driver.RateLimit{Limit: 1000, Period: time.Second, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	fw, err := syncguard.NewFencedWriter(g)
	if err != nil {
		t.Fatal(err)
	}
	return []fsEntry{
		{"Guard.TryAcquire", fsBound, func(ctx context.Context) error { _, err := g.TryAcquire(ctx, tag+"try"); return err }},
		{"Guard.Acquire (Timeout = bound)", 2 * fsBound, func(ctx context.Context) error {
			_, err := g.Acquire(ctx, tag+"acq", syncguard.Timeout(fsBound), syncguard.RetryDelay(50*time.Millisecond))
			return err
		}},
		{"Lease.Release", fsBound, func(ctx context.Context) error { _, err := relL.Release(ctx); return err }},
		{"Lease.Extend", fsBound, func(ctx context.Context) error { _, err := extL.Extend(ctx, fsTTL); return err }},
		{"Mutex.UnlockContext", fsBound, m.UnlockContext},
		{"Mutex.TryLock", fsBound, func(context.Context) error {
			if m2.TryLock() {
				return fmt.Errorf("TryLock succeeded during the fault")
			}
			return tryErr
		}},
		{"OncePerKey.Do", fsBound, func(ctx context.Context) error {
			_, err := once.Do(ctx, tag+"once", func(context.Context) (string, error) { return "done", nil })
			return err
		}},
		{"RateLimiter.Allow", fsBound, func(ctx context.Context) error { _, err := lim.Allow(ctx, tag+"rate"); return err }},
		{"FencedWriter.Write", fsBound, func(ctx context.Context) error { return fw.Write(ctx, fwL, tag+"res", []byte("v")) }},
	}
}

// fsCell measures every entry point (one build called without deadline,
// one with a distant deadline) during the fault, then heals it and
// measures the time to the first successful acquisition.
func fsCell(t *testing.T, rows *[]string, mu *sync.Mutex, fault string, g *syncguard.Guard[Capabilities], d *Driver, inject, heal func()) {
	t.Helper()
	// A fresh emulator (JVM) answers its first transactions slowly:
	// warm up before the set-up, whose calls have the short bound.
	for start := time.Now(); ; {
		l, err := g.TryAcquire(context.Background(), "warm:"+token())
		if err == nil {
			l.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s: the emulator did not answer within the bound for 30s: %v", fault, err)
		}
	}
	builds := [][]fsEntry{fsEntries(t, g, d, "nd:"), fsEntries(t, g, d, "dl:")}
	inject()
	type res struct {
		took time.Duration
		code driver.Code
	}
	got := map[string]*[2]res{}
	var gmu sync.Mutex
	var wg sync.WaitGroup
	for i, es := range builds {
		for _, e := range es {
			wg.Go(func() {
				ctx := context.Background()
				if i == 1 {
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
					t.Errorf("%s/%s: no answer after 30s (hang)", fault, e.name)
					return
				}
				took, code := time.Since(start), driver.CodeOf(err)
				if code != driver.ServiceUnavailable && code != driver.NetworkTimeout {
					t.Errorf("%s/%s (deadline %v): %v (code %v); want ServiceUnavailable or NetworkTimeout", fault, e.name, i == 1, err, code)
				}
				if took > e.bound+fsSlack {
					t.Errorf("%s/%s (deadline %v): took %v; bound %v (+%v slack)", fault, e.name, i == 1, took, e.bound, fsSlack)
				}
				gmu.Lock()
				r := got[e.name]
				if r == nil {
					r = new([2]res)
					got[e.name] = r
				}
				r[i] = res{took, code}
				gmu.Unlock()
			})
		}
	}
	wg.Wait()
	heal()
	healed := time.Now()
	var first time.Duration
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := g.TryAcquire(ctx, "probe:"+token())
		cancel()
		if err == nil {
			first = time.Since(healed)
			l.Close()
			break
		}
		if time.Since(healed) > 20*time.Second {
			t.Errorf("%s: no success within 20s after the heal: %v", fault, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, r := range got {
		*rows = append(*rows, fmt.Sprintf("| Firestore emulator | %s | %s | %d ms | %d ms %v | %d ms %v |",
			fault, name, builds[0][slices.IndexFunc(builds[0], func(e fsEntry) bool { return e.name == name })].bound.Milliseconds(),
			r[0].took.Milliseconds(), r[0].code, r[1].took.Milliseconds(), r[1].code))
	}
	*rows = append(*rows, fmt.Sprintf("recovery %s: first success %v after the heal", fault, first.Round(time.Millisecond)))
}

func fsGuard(t *testing.T, addr string) (*syncguard.Guard[Capabilities], *Driver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := newDriver(t, clientFor(t, ctx, addr), WithCallTimeout(fsBound))
	return syncguard.New(d, syncguard.WithOnReleaseError(func(error, string, string) {})), d
}

// TestFaultMatrixFirestore: the Firestore emulator rows of the matrix.
func TestFaultMatrixFirestore(t *testing.T) {
	// Not parallel: the leak check compares with the goroutines at its
	// start.
	shared := os.Getenv("FIRESTORE_EMULATOR_HOST")
	if shared == "" {
		needBackend(t, "FIRESTORE_EMULATOR_HOST is not set")
	}
	base := goleak.IgnoreCurrent()
	var (
		mu   sync.Mutex
		rows []string
	)
	t.Cleanup(func() {
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := goleak.Find(append(slices.Clone(fsLeakOptions), base)...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left 20s after the matrix: %v", err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		slices.Sort(rows)
		t.Log("\n" + strings.Join(rows, "\n"))
	})
	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		e := startPrivateEmulator(t)
		g, d := fsGuard(t, e.addr())
		fsCell(t, &rows, &mu, "stopped", g, d, e.kill, e.start)
	})
	for _, f := range []struct {
		name         string
		inject, heal func(p *faultproxy.Proxy)
	}{
		{"blackholed", func(p *faultproxy.Proxy) { p.Blackhole(true) }, func(p *faultproxy.Proxy) { p.Blackhole(false) }},
		{"slow", func(p *faultproxy.Proxy) { p.Slow(2 * fsBound) }, func(p *faultproxy.Proxy) { p.Slow(0) }},
	} {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			p, err := faultproxy.Start(shared)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close) // runs after the client's clean-up
			g, d := fsGuard(t, p.Addr())
			fsCell(t, &rows, &mu, f.name, g, d, func() { f.inject(p) }, func() { f.heal(p) })
		})
	}
}

// fsLeakOptions are TestMain's (testkit.FirestoreLeakOptions).
var fsLeakOptions = testkit.FirestoreLeakOptions()

// TestTransactionDiedWithServer: an InvalidArgument reply inside a
// transaction ("Transaction is invalid or closed", what the emulator
// answers when a restart lost the transaction) reaches the caller as
// ServiceUnavailable, a retryable code, not as InvalidArgument.
func TestTransactionDiedWithServer(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	err := d.runTx(context.Background(), func(context.Context, *firestore.Transaction) error {
		return status.Error(codes.InvalidArgument, "Transaction is invalid or closed.")
	})
	if got := driver.CodeOf(mapError(context.Background(), err, "k", "")); got != driver.ServiceUnavailable {
		t.Errorf("code %v (%v); want ServiceUnavailable", got, err)
	}
}
