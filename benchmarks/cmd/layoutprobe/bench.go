package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"
)

// result is one round of one variant.
type result struct {
	pairs      int64
	elapsed    time.Duration
	usec       int64 // scripts + top-level commands (commandstats)
	cmds       int64 // commands other than scripts (inner + top-level)
	scripts    int64
	cpu        time.Duration
	errs       int64
	firstError error
}

// runBench runs every variant for rounds interleaved rounds: in each
// round each variant (in an order rotated per round) runs goroutines
// goroutines doing acquire+release pairs on fresh keys through one client
// for dur (or, with pairs > 0, until pairs pairs are done), after one
// unreported warm-up run of each variant (warmup long, or min(pairs,
// 1000) pairs).
func runBench(ctx context.Context, vs []*variant, addr string, rounds, goroutines, pairs int, dur, warmup time.Duration) error {
	clients := map[bool]rueidis.Client{}
	for _, v := range vs {
		if clients[v.tracking] == nil {
			c, err := newClient(addr, v.tracking)
			if err != nil {
				return err
			}
			defer c.Close()
			clients[v.tracking] = c
		}
	}
	stat := clients[false]
	if stat == nil {
		stat = clients[true]
	}
	info, _ := stat.Do(ctx, stat.B().Info().Section("server").Build()).ToString()
	fmt.Printf("run %s: %s, GOMAXPROCS %d, %s/%s; Redis %s at %s; %d goroutines, %d rounds, %s per variant and round\n",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH,
		field(info, "redis_version:"), addr, goroutines, rounds, perRound(pairs, dur))
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at start: %s", load)
	}
	res := map[string][]result{}
	run := fmt.Sprintf("lp%d", time.Now().UnixNano())
	// Warm-up: each variant once (scripts loaded, connections and
	// goroutines started), not reported.
	for _, v := range vs {
		c := clients[v.tracking]
		for _, s := range v.scripts() {
			if err := c.Do(ctx, c.B().ScriptLoad().Script(s.src).Build()).Error(); err != nil {
				return err
			}
		}
		ns := fmt.Sprintf("%s:%s:warm", run, v.name)
		if r := benchOnce(ctx, c, v, ns, goroutines, min(pairs, 1000), warmup); r.errs > 0 {
			return fmt.Errorf("%s warm-up: %d errors, first %v", v.name, r.errs, r.firstError)
		}
		if err := clean(ctx, stat, ns); err != nil {
			return err
		}
	}
	for r := range rounds {
		for i := range vs {
			v := vs[(i+r)%len(vs)]
			c := clients[v.tracking]
			ns := fmt.Sprintf("%s:%s:%d", run, v.name, r)
			// Load the scripts (outside the measurement) so that no
			// NOSCRIPT fallback is counted.
			for _, s := range v.scripts() {
				if err := c.Do(ctx, c.B().ScriptLoad().Script(s.src).Build()).Error(); err != nil {
					return err
				}
			}
			before, err := readStats(ctx, stat)
			if err != nil {
				return err
			}
			res1 := benchOnce(ctx, c, v, ns, goroutines, pairs, dur)
			after, err := readStats(ctx, stat)
			if err != nil {
				return err
			}
			d := diff(before, after)
			res1.usec = d.serverUsec(v.topLevel)
			res1.scripts, res1.cmds = d.commands()
			res1.cpu = d.cpu
			res[v.name] = append(res[v.name], res1)
			fmt.Fprintf(os.Stderr, "round %d %-18s %8.0f pairs/s  %6.2f µs/pair server  %5.2f cmds/pair  errors %d\n", r+1, v.name,
				float64(res1.pairs)/res1.elapsed.Seconds(), float64(res1.usec)/float64(max(res1.pairs, 1)), float64(res1.cmds)/float64(max(res1.pairs, 1)), res1.errs)
			if res1.firstError != nil {
				fmt.Fprintf(os.Stderr, "  first error: %v\n", res1.firstError)
			}
			if err := clean(ctx, stat, ns); err != nil {
				return err
			}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "variant\tpairs/s (median)\tpairs/s (rounds)\tserver µs/pair (median)\tserver µs/pair (rounds)\tcmds/pair\tscripts/pair\tserver CPU µs/pair\terrors\t\n")
	for _, v := range vs {
		rs := res[v.name]
		var ps, us, cpu []float64
		var errs int64
		for _, r := range rs {
			n := float64(max(r.pairs, 1))
			ps = append(ps, float64(r.pairs)/r.elapsed.Seconds())
			us = append(us, float64(r.usec)/n)
			cpu = append(cpu, float64(r.cpu.Microseconds())/n)
			errs += r.errs
		}
		last := rs[len(rs)-1]
		n := float64(max(last.pairs, 1))
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%.2f\t%s\t%.2f\t%.2f\t%.2f\t%d\t\n", v.name, median(ps), list(ps, "%.0f"), median(us), list(us, "%.2f"),
			float64(last.cmds)/n, float64(last.scripts)/n, median(cpu), errs)
	}
	w.Flush()
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average at end: %s", load)
	}
	fmt.Println("server µs/pair: INFO commandstats usec of EVALSHA/EVAL (inner commands included) plus the top-level commands of the variant (SET for raw), per pair; server CPU: used_cpu_user+sys delta per pair (all server work, network I/O included).")
	return nil
}

func perRound(pairs int, dur time.Duration) string {
	if pairs > 0 {
		return fmt.Sprintf("%d pairs", pairs)
	}
	return dur.String()
}

func benchOnce(ctx context.Context, c rueidis.Client, v *variant, ns string, goroutines, pairs int, dur time.Duration) result {
	var next, done, errs atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if pairs > 0 && i >= int64(pairs) {
					return
				}
				if pairs <= 0 && i%16 == 0 && time.Now().After(deadline) {
					return
				}
				p := newPair(ns, int(i))
				err := v.acq.want(exec1(ctx, c, v.acq, p))
				if err == nil {
					err = v.rel.want(exec1(ctx, c, v.rel, p))
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	r := result{pairs: done.Load(), elapsed: time.Since(start), errs: errs.Load()}
	if e, ok := firstErr.Load().(error); ok {
		r.firstError = e
	}
	return r
}

// exec1 runs one step as the driver does: a script through
// rueidis.Lua.Exec (EVALSHA), a command through Do.
func exec1(ctx context.Context, c rueidis.Client, st step, p *pair) rueidis.RedisResult {
	if st.cmd != nil {
		return c.Do(ctx, st.cmd(c, p))
	}
	return st.s.lua.Exec(ctx, c, st.keys(p), st.args(p))
}

// clean unlinks every key whose name contains ns.
func clean(ctx context.Context, c rueidis.Client, ns string) error {
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match("*"+ns+":*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func list(xs []float64, f string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf(f, x)
	}
	return s
}
