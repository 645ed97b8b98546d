// Command redis-layout-probe compares the server work of acquire+release
// pairs of SyncGuard's Redis lock layouts (main 5e86ecb, HEAD 54eda22, a
// one-string-per-key probe and baselines).
//
//	bench:      64 goroutines on fresh keys through one rueidis client,
//	            interleaved rounds; pairs/s and INFO commandstats usec/pair.
//	callgrind:  pipelined pairs against a redis-server under valgrind
//	            --tool=callgrind; instructions per pair.
//	list:       the variants.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	mode := flag.String("mode", "bench", "bench, callgrind or list")
	addr := flag.String("addr", "127.0.0.1:6379", "Redis address")
	names := flag.String("variants", "5e86ecb,head,string,string-lean,string-noidx,raw,rueidislock", "comma-separated variants, or all")
	rounds := flag.Int("rounds", 5, "bench: interleaved rounds")
	goroutines := flag.Int("goroutines", 64, "bench: goroutines")
	dur := flag.Duration("duration", 5*time.Second, "bench: duration of each variant in each round")
	warmup := flag.Duration("warmup", time.Second, "bench: unreported warm-up run of each variant before the rounds")
	pairs := flag.Int("pairs", 0, "bench: pairs per variant and round instead of -duration; callgrind: measured pairs (default 2000)")
	pid := flag.Int("pid", 0, "callgrind: pid of the valgrind'ed redis-server")
	out := flag.String("out", "", "callgrind: --callgrind-out-file of that server (dumps are <out>.<n>)")
	batch := flag.Int("batch", 200, "callgrind: pairs per pipelined batch")
	warm := flag.Int("warm", 200, "callgrind: warm-up pairs before the counters are zeroed")
	flush := flag.Bool("flushall", false, "callgrind: FLUSHALL before the warm-up (private servers only)")
	flag.BoolVar(&useExecMulti, "execmulti", false, "callgrind: send scripts with rueidis.Lua.ExecMulti (a SCRIPT LOAD per batch) instead of DoMulti(EVALSHA)")
	flag.Parse()
	vs, err := findVariants(*names)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	switch *mode {
	case "list":
		for _, v := range variants() {
			fmt.Printf("%-20s %s\n", v.name, v.desc)
		}
	case "bench":
		err = runBench(ctx, vs, *addr, *rounds, *goroutines, *pairs, *dur, *warmup)
	case "callgrind":
		n := *pairs
		if n <= 0 {
			n = 2000
		}
		for _, v := range vs {
			if err = runCallgrind(ctx, v, *addr, *pid, *out, n, *batch, *warm, *flush); err != nil {
				break
			}
		}
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
