package benchmarks

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the outcome of one scenario run of one library.
type Result struct {
	Impl     string
	Scenario string
	Ops      int           // acquire+release pairs (critical sections)
	Elapsed  time.Duration // measured time
	Errors   int
	// AllocsPerOp is heap allocations per pair, all goroutines of the
	// process counted (serial and parallel scenarios only).
	AllocsPerOp float64
	// ServerCmds is the server's command count over the run (Redis INFO
	// commandstats delta, script-internal commands included), -1 if
	// unknown; ServerScripts counts the EVAL/EVALSHA/FCALL among them.
	ServerCmds, ServerScripts int64
	// ServerCPU is the server process's CPU time over the run (Redis INFO
	// cpu delta), -1 if unknown.
	ServerCPU time.Duration
	// ServerTime is the Redis thread's time executing the library's
	// commands (INFO commandstats usec: scripts with their inner commands,
	// plus [Impl.TopLevel] commands), -1 if unknown.
	ServerTime time.Duration

	// Contended scenario only.
	Wait, Handoff Percentiles // per critical section
	// WaitAll is Wait with the waits still unfinished at the end of the
	// run counted at their length so far (a lower bound): a library that
	// starves some goroutines otherwise drops their waits from the
	// percentiles altogether.
	WaitAll           Percentiles
	WinsMin, WinsMax  int
	Violations        int // mutual-exclusion violations observed
	WaitMaxIncomplete time.Duration
}

// PerSec is pairs (or critical sections) per second.
func (r Result) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// CPUPerOp is the server's CPU time per pair, or -1.
func (r Result) CPUPerOp() time.Duration {
	if r.ServerCPU < 0 || r.Ops == 0 {
		return -1
	}
	return r.ServerCPU / time.Duration(r.Ops)
}

// TimePerOp is the server's command time per pair, or -1.
func (r Result) TimePerOp() time.Duration {
	if r.ServerTime < 0 || r.Ops == 0 {
		return -1
	}
	return r.ServerTime / time.Duration(r.Ops)
}

// CmdsPerOp is server commands per pair, or -1.
func (r Result) CmdsPerOp() float64 {
	if r.ServerCmds < 0 || r.Ops == 0 {
		return -1
	}
	return float64(r.ServerCmds) / float64(r.Ops)
}

// Percentiles of a latency sample.
type Percentiles struct {
	P50, P99, Max time.Duration
	N             int
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return Percentiles{P50: at(0.50), P99: at(0.99), Max: d[len(d)-1], N: len(d)}
}

// Counter reads server-side counters (nil: none).
type Counter func() (Count, error)

// Count is a reading of a server's counters: commands run (those inside
// scripts included), script runs, and the server process's CPU time
// (user + system).
type Count struct {
	Cmds, Scripts int64
	CPU           time.Duration
	// Usec is the usec of INFO commandstats by command name (INFO
	// itself excluded).
	Usec map[string]int64
}

var runSeq atomic.Int64

// Namespace returns a fresh key namespace.
func Namespace(tag string) string {
	return tag + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-" + strconv.FormatInt(runSeq.Add(1), 36)
}

// unknown is the Count of a run without a counter.
var unknown = Count{Cmds: -1, Scripts: -1, CPU: -1}

func countStart(c Counter) Count {
	if c == nil {
		return unknown
	}
	n, err := c()
	if err != nil {
		return unknown
	}
	return n
}

func countEnd(c Counter, n0 Count) Count {
	if c == nil || n0.Cmds < 0 {
		return unknown
	}
	n, err := c()
	if err != nil {
		return unknown
	}
	d := Count{Cmds: n.Cmds - n0.Cmds, Scripts: n.Scripts - n0.Scripts, CPU: n.CPU - n0.CPU, Usec: map[string]int64{}}
	for name, v := range n.Usec {
		d.Usec[name] = v - n0.Usec[name]
	}
	return d
}

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// Serial runs acquire+release pairs on fresh keys from one goroutine for
// d.
func Serial(ctx context.Context, im Impl, l Locker, ns string, d time.Duration, c Counter) Result {
	return serial(ctx, im, l, ns, d, c, false)
}

// SerialSameKey is Serial on one key: no per-key state grows (every
// SyncGuard driver keeps a fence counter per key forever), so it shows the
// cost of the pair itself.
func SerialSameKey(ctx context.Context, im Impl, l Locker, ns string, d time.Duration, c Counter) Result {
	return serial(ctx, im, l, ns, d, c, true)
}

func serial(ctx context.Context, im Impl, l Locker, ns string, d time.Duration, c Counter, same bool) Result {
	r := Result{Impl: im.Name, Scenario: "serial"}
	prefix := ns + ":s:"
	nkeys := 1 << 16
	if same {
		r.Scenario, nkeys = "samekey", 1
	}
	keys := make([]string, 0, nkeys)
	for i := range cap(keys) {
		keys = append(keys, prefix+strconv.Itoa(i))
	}
	warm(ctx, l, prefix+"warm")
	n0 := countStart(c)
	m0 := mallocs()
	start := time.Now()
	deadline := start.Add(d)
	i := 0
	for ; ; i++ {
		if i&15 == 0 && time.Now().After(deadline) {
			break
		}
		var key string
		switch {
		case same:
			key = keys[0]
		case i < len(keys):
			key = keys[i]
		default:
			key = prefix + strconv.Itoa(i)
		}
		if !pair(ctx, l, key) {
			r.Errors++
		}
	}
	r.Elapsed = time.Since(start)
	m1 := mallocs()
	n := countEnd(c, n0)
	r.ServerCmds, r.ServerScripts, r.ServerCPU, r.ServerTime = n.Cmds, n.Scripts, n.CPU, serverTime(n, im.TopLevel)
	r.Ops = i
	r.AllocsPerOp = float64(m1-m0) / float64(max(i, 1))
	return r
}

func warm(ctx context.Context, l Locker, key string) {
	for range 20 {
		pair(ctx, l, key)
	}
}

func pair(ctx context.Context, l Locker, key string) bool {
	u, ok, err := l.TryLock(ctx, key)
	if err != nil || !ok {
		return false
	}
	return u(ctx) == nil
}

// Parallel runs acquire+release pairs from g goroutines, each on its own
// fresh keys, all through one Locker, for d.
func Parallel(ctx context.Context, im Impl, l Locker, ns string, g int, d time.Duration, c Counter) Result {
	r := Result{Impl: im.Name, Scenario: "parallel"}
	warm(ctx, l, ns+":p:warm")
	var (
		stop   atomic.Bool
		ops    atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		begin  = make(chan struct{})
		ready  sync.WaitGroup
		m0, m1 uint64
	)
	for w := range g {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			prefix := ns + ":p:" + strconv.Itoa(w) + ":"
			ready.Done()
			<-begin
			n, e := 0, 0
			for i := 0; !stop.Load(); i++ {
				if pair(ctx, l, prefix+strconv.Itoa(i)) {
					n++
				} else {
					e++
				}
			}
			ops.Add(int64(n))
			errs.Add(int64(e))
		}()
	}
	ready.Wait()
	n0 := countStart(c)
	m0 = mallocs()
	start := time.Now()
	close(begin)
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	r.Elapsed = time.Since(start)
	m1 = mallocs()
	n := countEnd(c, n0)
	r.ServerCmds, r.ServerScripts, r.ServerCPU, r.ServerTime = n.Cmds, n.Scripts, n.CPU, serverTime(n, im.TopLevel)
	r.Ops = int(ops.Load())
	r.Errors = int(errs.Load())
	r.AllocsPerOp = float64(m1-m0) / float64(max(r.Ops, 1))
	return r
}

// Contended runs g goroutines, each with its own Locker (its own client:
// as g processes would), taking one key in turn and holding it for hold,
// for d. It records each critical section's wait (Lock call to return),
// hand-off (previous holder's unlock call to this acquisition), wins per
// goroutine and mutual-exclusion violations. Waits still in progress at
// the end count towards the maximum (WaitMaxIncomplete), so a starved
// goroutine shows.
func Contended(ctx context.Context, im Impl, ls []Locker, ns string, hold, d time.Duration, c Counter) Result {
	r := Result{Impl: im.Name, Scenario: "contended"}
	key := ns + ":c"
	g := len(ls)
	var (
		inCS        atomic.Int32
		violations  atomic.Int64
		lastRelease atomic.Int64 // unix ns of the latest unlock call
		errs        atomic.Int64
		wg          sync.WaitGroup
		mu          sync.Mutex
		waits       []time.Duration
		handoffs    []time.Duration
		wins        = make([]int, g)
		pending     = make([]atomic.Int64, g) // unix ns a Lock call started, 0 if none
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	begin := make(chan struct{})
	n0 := countStart(c)
	var endAt atomic.Int64
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			var myWaits, myHandoffs []time.Duration
			defer func() {
				mu.Lock()
				waits = append(waits, myWaits...)
				handoffs = append(handoffs, myHandoffs...)
				mu.Unlock()
			}()
			for runCtx.Err() == nil {
				t0 := time.Now()
				pending[w].Store(t0.UnixNano())
				u, err := ls[w].Lock(runCtx, key)
				t1 := time.Now()
				pending[w].Store(0)
				if err != nil {
					if runCtx.Err() == nil {
						errs.Add(1)
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if !inCS.CompareAndSwap(0, 1) {
					violations.Add(1)
				}
				if e := endAt.Load(); e == 0 || t1.UnixNano() <= e {
					myWaits = append(myWaits, t1.Sub(t0))
					if lr := lastRelease.Load(); lr != 0 {
						myHandoffs = append(myHandoffs, time.Duration(t1.UnixNano()-lr))
					}
					wins[w]++
				}
				time.Sleep(hold)
				inCS.Store(0)
				lastRelease.Store(time.Now().UnixNano())
				uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := u(uctx); err != nil {
					errs.Add(1)
				}
				ucancel()
			}
		}()
	}
	start := time.Now()
	close(begin)
	time.Sleep(d)
	end := time.Now()
	endAt.Store(end.UnixNano())
	r.Elapsed = end.Sub(start)
	var unfinished []time.Duration
	for w := range pending {
		if p := pending[w].Load(); p != 0 {
			u := time.Duration(end.UnixNano() - p)
			unfinished = append(unfinished, u)
			r.WaitMaxIncomplete = max(r.WaitMaxIncomplete, u)
		}
	}
	n := countEnd(c, n0)
	r.ServerCmds, r.ServerScripts, r.ServerCPU, r.ServerTime = n.Cmds, n.Scripts, n.CPU, serverTime(n, im.TopLevel)
	cancel()
	wg.Wait()
	r.Errors = int(errs.Load())
	r.Violations = int(violations.Load())
	for _, n := range wins {
		r.Ops += n
	}
	r.WinsMin, r.WinsMax = slices.Min(wins), slices.Max(wins)
	r.Wait = percentiles(waits)
	r.WaitAll = percentiles(append(slices.Clone(waits), unfinished...))
	r.Handoff = percentiles(handoffs)
	if r.WaitMaxIncomplete > r.Wait.Max {
		r.Wait.Max = r.WaitMaxIncomplete
	}
	return r
}

// String is a one-line summary.
func (r Result) String() string {
	s := fmt.Sprintf("%-20s %-9s %9.0f/s", r.Impl, r.Scenario, r.PerSec())
	if r.Scenario == "contended" {
		s += fmt.Sprintf(" wait p50 %v p99 %v max %v handoff p50 %v p99 %v wins %d..%d viol %d",
			r.Wait.P50, r.Wait.P99, r.Wait.Max, r.Handoff.P50, r.Handoff.P99, r.WinsMin, r.WinsMax, r.Violations)
	} else {
		s += fmt.Sprintf(" %.1f allocs/op", r.AllocsPerOp)
	}
	if r.ServerCmds >= 0 {
		s += fmt.Sprintf(" %.1f cmds/op (%.2f scripts/op)", r.CmdsPerOp(), float64(r.ServerScripts)/float64(max(r.Ops, 1)))
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(" errors %d", r.Errors)
	}
	return s
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
