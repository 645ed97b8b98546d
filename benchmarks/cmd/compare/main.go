// Command compare runs every scenario against SyncGuard and its peers,
// interleaved (each round runs every library once per scenario, in an
// order that rotates between rounds), and prints a markdown table of the
// medians with SyncGuard's ratios to each peer and the targets of issue 21
// marked met or not met, and optionally SVG charts
// (-svg dir).
//
//	cd benchmarks && go run ./cmd/compare -rounds 3
//
// Use -redis with a Redis nobody else uses, or the server command counts
// include other clients' commands.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/benchmarks"
)

func main() {
	var (
		rounds   = flag.Int("rounds", 3, "interleaved rounds; the table shows medians")
		serialD  = flag.Duration("serial", 2*time.Second, "duration of one serial run")
		parD     = flag.Duration("parallel", 2*time.Second, "duration of one parallel run")
		contD    = flag.Duration("contended", 3*time.Second, "duration of one contended run")
		hold     = flag.Duration("hold", time.Millisecond, "hold time in the contended scenario")
		parG     = flag.Int("goroutines", 64, "goroutines in the parallel scenario")
		contG    = flag.Int("waiters", 16, "goroutines (each with its own client) in the contended scenario")
		only     = flag.String("only", "", "comma-separated library names (default all)")
		scen     = flag.String("scenarios", "serial,parallel,contended,samekey", "scenarios to run (samekey: serial on one key, memory backend only)")
		redis    = flag.String("redis", "", "Redis address (default $SYNCGUARD_BENCH_REDIS or 127.0.0.1:6379)")
		pg       = flag.String("postgres", "", "PostgreSQL URL (default $SYNCGUARD_BENCH_POSTGRES or postgres://postgres@127.0.0.1:5432/test)")
		verbose  = flag.Bool("v", false, "print every run")
		markdown = flag.String("o", "", "also write the markdown to this file")
		svgDir   = flag.String("svg", "", "also write SVG charts (one per scenario, and the contended waits) into this directory")
		beforeUs = flag.Float64("before-us", 0, "server µs per pair of SyncGuard before, 64 goroutines (issue 21 asks ≤ 0.55× of it); 0: report only")
	)
	flag.Parse()
	if *redis != "" {
		os.Setenv("SYNCGUARD_BENCH_REDIS", *redis)
	}
	if *pg != "" {
		os.Setenv("SYNCGUARD_BENCH_POSTGRES", *pg)
	}
	impls := benchmarks.Impls()
	if *only != "" {
		want := strings.Split(*only, ",")
		impls = slices.DeleteFunc(impls, func(im benchmarks.Impl) bool { return !slices.Contains(want, im.Name) })
	}
	scenarios := strings.Split(*scen, ",")

	admin, err := rueidis.NewClient(benchmarks.RueidisOption())
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis:", err)
		os.Exit(1)
	}
	defer admin.Close()
	counter := benchmarks.RedisCounter(admin)

	// A cancellable context, as in real use (SyncGuard's Redis driver runs
	// each script on a goroutine of its own when the context can end).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := map[string]map[string][]benchmarks.Result{} // scenario → impl → runs
	loadStart := loadavg()
	started := time.Now()
	for round := range *rounds {
		for _, sc := range scenarios {
			order := rotate(impls, round)
			for _, im := range order {
				if sc == "contended" && im.NoContended || sc == "samekey" && im.Backend != benchmarks.Memory {
					continue
				}
				var c benchmarks.Counter
				if im.Backend == benchmarks.Redis {
					c = counter
				}
				ns := benchmarks.Namespace(im.Name)
				r, err := runOne(ctx, sc, im, ns, c, *serialD, *parD, *contD, *hold, *parG, *contG)
				if im.Backend == benchmarks.Redis {
					if err := benchmarks.CleanRedis(ctx, admin, ns); err != nil {
						fmt.Fprintf(os.Stderr, "%s %s: clean-up: %v\n", im.Name, sc, err)
					}
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", im.Name, sc, err)
					continue
				}
				if *verbose {
					fmt.Fprintf(os.Stderr, "round %d: %s\n", round+1, r)
				}
				if results[sc] == nil {
					results[sc] = map[string][]benchmarks.Result{}
				}
				results[sc][im.Name] = append(results[sc][im.Name], r)
			}
		}
	}
	var out strings.Builder
	header(&out, *rounds, time.Since(started), loadStart, loadavg(), *hold, *parG, *contG)
	sums := report(&out, impls, scenarios, results, *beforeUs)
	if *svgDir != "" {
		if err := writeCharts(*svgDir, impls, scenarios, sums); err != nil {
			fmt.Fprintln(os.Stderr, "charts:", err)
		}
	}
	fmt.Print(out.String())
	if *markdown != "" {
		if err := os.WriteFile(*markdown, []byte(out.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

func rotate(impls []benchmarks.Impl, n int) []benchmarks.Impl {
	if len(impls) == 0 {
		return nil
	}
	n %= len(impls)
	return append(slices.Clone(impls[n:]), impls[:n]...)
}

func runOne(ctx context.Context, sc string, im benchmarks.Impl, ns string, c benchmarks.Counter, serialD, parD, contD, hold time.Duration, parG, contG int) (benchmarks.Result, error) {
	switch sc {
	case "serial", "parallel", "samekey":
		l, err := im.New(ns)
		if err != nil {
			return benchmarks.Result{}, err
		}
		defer l.Close()
		switch sc {
		case "serial":
			return benchmarks.Serial(ctx, im, l, ns, serialD, c), nil
		case "samekey":
			return benchmarks.SerialSameKey(ctx, im, l, ns, serialD, c), nil
		}
		return benchmarks.Parallel(ctx, im, l, ns, parG, parD, c), nil
	case "contended":
		ls := make([]benchmarks.Locker, 0, contG)
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		for range contG {
			l, err := im.New(ns)
			if err != nil {
				return benchmarks.Result{}, err
			}
			ls = append(ls, l)
		}
		return benchmarks.Contended(ctx, im, ls, ns, hold, contD, c), nil
	}
	return benchmarks.Result{}, fmt.Errorf("unknown scenario %q", sc)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func header(w io.Writer, rounds int, took time.Duration, l0, l1 string, hold time.Duration, parG, contG int) {
	redisVer := "?"
	if out, err := exec.Command("redis-cli", "-u", "redis://"+benchmarks.RedisAddr(), "INFO", "server").Output(); err == nil {
		for line := range strings.Lines(string(out)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				redisVer = v
			}
		}
	}
	fmt.Fprintf(w, "Run: %s, %d interleaved rounds (medians shown), %s, GOMAXPROCS %d, %s/%s; Redis %s at %s; load average %s at start, %s at end; took %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), rounds, runtime.Version(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH,
		redisVer, benchmarks.RedisAddr(), l0, l1, took.Round(time.Second))
	fmt.Fprintf(w, "Scenarios: serial = acquire+release pairs on fresh keys from one goroutine (samekey: on one key, memory only); parallel = %d goroutines on distinct fresh keys through one client; contended = %d goroutines, each with its own client, on one key, holding it %v. Server cmds and scripts are Redis INFO commandstats deltas (commands inside scripts included); server CPU is the Redis process's used_cpu_user+sys delta (its network I/O included).\n\n", parG, contG, hold)
}
