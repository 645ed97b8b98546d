package benchmarks

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// Go benchmarks over the same adapters and scenarios as cmd/compare, for
// benchstat:
//
//	go test -run '^$' -bench . -count 10 | tee new.txt
//	benchstat -col /lib new.txt
//
// Sub-benchmark names are lib=<library>, so benchstat can put the
// libraries side by side. A library whose server is unreachable is
// skipped. BenchmarkContended reports its waits and fairness as extra
// metrics (wait-p99-ms, wait-max-ms, handoff-p50-us, fair = fewest/most
// wins) and server commands per critical section (cmds/op, Redis only).

func forEachImpl(b *testing.B, scenario string, fn func(b *testing.B, im Impl)) {
	for _, im := range Impls() {
		if scenario == "contended" && im.NoContended {
			continue
		}
		b.Run("lib="+im.Name, func(b *testing.B) { fn(b, im) })
	}
}

func newLocker(b *testing.B, im Impl, ns string) Locker {
	b.Helper()
	if im.Backend == Redis {
		b.Cleanup(func() {
			c, err := rueidis.NewClient(RueidisOption())
			if err != nil {
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = CleanRedis(ctx, c, ns)
		})
	}
	l, err := im.New(ns)
	if err != nil {
		b.Skipf("%s: %v", im.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, ok, err := l.TryLock(ctx, ns+":probe")
	if err != nil || !ok {
		l.Close()
		b.Skipf("%s: server unavailable: ok=%v err=%v", im.Name, ok, err)
	}
	_ = u(ctx)
	return l
}

func counterFor(b *testing.B, im Impl) Counter {
	if im.Backend != Redis {
		return nil
	}
	c, err := rueidis.NewClient(RueidisOption())
	if err != nil {
		return nil
	}
	b.Cleanup(c.Close)
	return RedisCounter(c)
}

// BenchmarkSerial: one acquire+release pair per op, fresh keys, one
// goroutine.
func BenchmarkSerial(b *testing.B) {
	forEachImpl(b, "serial", func(b *testing.B, im Impl) {
		ns := Namespace(im.Name)
		l := newLocker(b, im, ns)
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background()) // as in real use
		defer cancel()
		cnt := counterFor(b, im)
		n0 := countStart(cnt)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !pair(ctx, l, ns+":"+strconv.Itoa(i)) {
				b.Fatal("pair failed")
			}
			i++
		}
		if n := countEnd(cnt, n0); n.Cmds >= 0 {
			b.ReportMetric(float64(n.Cmds)/float64(b.N), "cmds/op")
			b.ReportMetric(float64(n.CPU.Microseconds())/float64(b.N), "server-cpu-us/op")
		}
	})
}

// BenchmarkParallel: pairs from 64 goroutines (GOMAXPROCS × parallelism),
// each on its own fresh keys, through one client.
func BenchmarkParallel(b *testing.B) {
	forEachImpl(b, "parallel", func(b *testing.B, im Impl) {
		ns := Namespace(im.Name)
		l := newLocker(b, im, ns)
		defer l.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var seq atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(max(1, 64/max(1, runtimeProcs())))
		b.RunParallel(func(pb *testing.PB) {
			prefix := ns + ":" + strconv.FormatInt(seq.Add(1), 10) + ":"
			for i := 0; pb.Next(); i++ {
				if !pair(ctx, l, prefix+strconv.Itoa(i)) {
					b.Error("pair failed")
					return
				}
			}
		})
	})
}

// BenchmarkContended: 16 goroutines, each with its own client, on one
// key with a 1 ms hold; one op is one critical section. The run lasts
// b.N × 2 ms (at least 1 s).
func BenchmarkContended(b *testing.B) {
	if os.Getenv("SYNCGUARD_BENCH_SHORT") != "" {
		b.Skip("SYNCGUARD_BENCH_SHORT set")
	}
	forEachImpl(b, "contended", func(b *testing.B, im Impl) {
		ns := Namespace(im.Name)
		ls := make([]Locker, 16)
		for i := range ls {
			ls[i] = newLocker(b, im, ns)
		}
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		d := max(time.Second, time.Duration(b.N)*2*time.Millisecond)
		b.ResetTimer()
		r := Contended(context.Background(), im, ls, ns, time.Millisecond, d, counterFor(b, im))
		b.StopTimer()
		if r.Ops == 0 {
			b.Fatal("no critical section completed")
		}
		b.ReportMetric(float64(r.Elapsed.Nanoseconds())/float64(r.Ops), "ns/op")
		b.ReportMetric(r.PerSec(), "CS/s")
		b.ReportMetric(float64(r.Wait.P99.Microseconds())/1000, "wait-p99-ms")
		b.ReportMetric(float64(r.Wait.Max.Microseconds())/1000, "wait-max-ms")
		b.ReportMetric(float64(r.Handoff.P50.Microseconds()), "handoff-p50-us")
		if r.WinsMax > 0 {
			b.ReportMetric(float64(r.WinsMin)/float64(r.WinsMax), "fair")
		}
		if c := r.CmdsPerOp(); c >= 0 {
			b.ReportMetric(c, "cmds/op")
		}
		if c := r.CPUPerOp(); c >= 0 {
			b.ReportMetric(float64(c.Nanoseconds())/1000, "server-cpu-us/op")
		}
		if r.Violations > 0 {
			b.Errorf("%d mutual-exclusion violations", r.Violations)
		}
	})
}

// BenchmarkSemaphore: 64 goroutines take and give back permits of one
// key through one client; permits=64 never runs out (the cost of a
// permit), permits=8 is contended (refused attempts count as ops and are
// reported as refused/op). cmds/op is server commands per op (Redis
// commandstats, script-internal commands included).
func BenchmarkSemaphore(b *testing.B) {
	for _, permits := range []int{64, 8} {
		for _, im := range SemaphoreImpls() {
			b.Run("permits="+strconv.Itoa(permits)+"/lib="+im.Name, func(b *testing.B) {
				ns := Namespace(im.Name)
				l, err := im.New(ns, permits)
				if err != nil {
					b.Skipf("%s: %v", im.Name, err)
				}
				defer l.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				b.Cleanup(func() {
					c, err := rueidis.NewClient(RueidisOption())
					if err != nil {
						return
					}
					defer c.Close()
					cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
					defer ccancel()
					_ = CleanRedis(cctx, c, ns)
				})
				key := ns + ":sem"
				cnt := counterFor(b, Impl{Backend: Redis})
				n0 := countStart(cnt)
				var refused atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(max(1, 64/max(1, runtimeProcs())))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						u, ok, err := l.TryLock(ctx, key)
						if err != nil {
							b.Error(err)
							return
						}
						if !ok {
							refused.Add(1)
							continue
						}
						if err := u(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
				if n := countEnd(cnt, n0); n.Cmds >= 0 {
					b.ReportMetric(float64(n.Cmds)/float64(b.N), "cmds/op")
					b.ReportMetric(float64(n.CPU.Microseconds())/float64(b.N), "server-cpu-us/op")
				}
			})
		}
	}
}
