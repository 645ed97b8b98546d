package otelsyncguard_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
	"github.com/syncguard/syncguard/otelsyncguard"
)

// BenchmarkGuardPairsRedis measures Guard acquire+release pairs on Redis
// from 64 goroutines (each on its own key) in four configurations:
//
//   - otel=off: no observer;
//   - otel=metrics: the integration with an SDK meter provider and no
//     tracer (the global no-op one);
//   - otel=sampled10: metrics, and an SDK tracer sampling 10% of traces
//     (ParentBased(TraceIDRatioBased(0.1)), a common production setting);
//   - otel=on: metrics, and an SDK tracer sampling every span.
//
// Spans go through a batch processor to a discarding exporter. Run the
// variants side by side, several times:
//
//	for i in 1 2 3 4 5; do go test -run '^$' -bench GuardPairsRedis -count 1 .; done | tee bench.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /otel bench.txt
func BenchmarkGuardPairsRedis(b *testing.B) {
	d, ok := drivertest.Redis(b)
	if !ok {
		b.Skip("redis unavailable")
	}
	benchPairs(b, d)
}

// BenchmarkGuardPairsMemory is BenchmarkGuardPairsRedis on the in-process
// driver: without network time it shows the integration's CPU cost.
func BenchmarkGuardPairsMemory(b *testing.B) {
	benchPairs(b, memory.New())
}

func benchPairs[C driver.Capabilities](b *testing.B, d driver.Driver[C]) {
	for _, variant := range []string{"off", "metrics", "sampled10", "on"} {
		var opts []syncguard.Option
		if variant != "off" {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			oo := []otelsyncguard.Option{otelsyncguard.WithMeterProvider(mp), otelsyncguard.WithTracerProvider(tracenoop.NewTracerProvider())}
			var tp *sdktrace.TracerProvider
			switch variant {
			case "sampled10":
				tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			case "on":
				tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			}
			if tp != nil {
				oo = append(oo, otelsyncguard.WithTracerProvider(tp))
			}
			b.Cleanup(func() {
				_ = mp.Shutdown(context.Background())
				if tp != nil {
					_ = tp.Shutdown(context.Background())
				}
			})
			obs, err := otelsyncguard.New(d.Capabilities(), oo...)
			if err != nil {
				b.Fatal(err)
			}
			opts = append(opts, syncguard.WithObserver(obs))
		}
		g := syncguard.New(d, opts...)
		b.Run("otel="+variant, func(b *testing.B) {
			var next atomic.Int64
			ctx := context.Background()
			// 64 goroutines whatever GOMAXPROCS is.
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				key := "bench:" + strconv.FormatInt(next.Add(1), 10)
				for pb.Next() {
					l, err := g.Acquire(ctx, key)
					if err != nil {
						b.Error(err)
						return
					}
					if ok, err := l.Release(ctx); !ok || err != nil {
						b.Errorf("Release = %v, %v", ok, err)
						return
					}
				}
			})
			// This process's CPU time per pair (user+system, every
			// goroutine): steadier than ns/op on a shared machine, where
			// other jobs' load changes the wall time. The Redis server's
			// CPU is not included.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU returns the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
