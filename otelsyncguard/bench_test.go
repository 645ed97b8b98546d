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

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/internal/drivertest"
	"github.com/syncguard/syncguard/otelsyncguard"
)

// BenchmarkGuardPairsRedis measures Guard acquire+release pairs on Redis
// from 64 goroutines (each on its own key), with the integration off and
// on, under three tracing setups of the calling service:
//
//   - trace=none: no tracing; otel=on is the integration with an SDK
//     meter provider and a no-op tracer provider (metrics only);
//   - trace=10pct: each pair runs inside a caller's span ("request") from
//     an SDK tracer provider sampling 10% of traces
//     (ParentBased(TraceIDRatioBased(0.1)), a common production setting);
//     otel=on adds the integration's metrics and spans;
//   - trace=all: the same with every trace sampled (AlwaysSample).
//
// The caller's own span is in both otel=off and otel=on, so that the
// ratio is the integration's cost. otel=producer is otel=on with the
// metrics aggregated by the Observer (WithProducer) and read through a
// reader's producer. trace=none/otel=floor is a probe of the least any
// metrics design costs: an observer that takes the same events and only
// adds them to atomic counters and buckets. Spans go through a batch processor to a
// discarding exporter. Run the variants side by side, several times:
//
//	for i in 1 2 3; do go test -run '^$' -bench GuardPairsRedis -count 1 .; done | tee bench.txt
//	benchstat -row /trace -col /otel bench.txt
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
	for _, tracing := range []string{"none", "10pct", "all"} {
		for _, mode := range []string{"off", "on", "producer", "floor"} {
			if mode == "floor" && tracing != "none" {
				continue
			}
			otelOn := mode == "on"
			var tp trace.TracerProvider = tracenoop.NewTracerProvider()
			var sdktp *sdktrace.TracerProvider
			switch tracing {
			case "10pct":
				sdktp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			case "all":
				sdktp = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
					sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			}
			if sdktp != nil {
				tp = sdktp
				b.Cleanup(func() { _ = sdktp.Shutdown(context.Background()) })
			}
			var opts []syncguard.Option
			if otelOn {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
				obs, err := otelsyncguard.New(d.Capabilities(), otelsyncguard.WithMeterProvider(mp), otelsyncguard.WithTracerProvider(tp))
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, syncguard.WithObserver(obs))
			}
			switch mode {
			case "floor":
				opts = append(opts, syncguard.WithObserver(&floorObserver{}))
			case "producer":
				obs, err := otelsyncguard.New(d.Capabilities(), otelsyncguard.WithProducer(), otelsyncguard.WithTracerProvider(tp))
				if err != nil {
					b.Fatal(err)
				}
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader(sdkmetric.WithProducer(obs))))
				b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
				opts = append(opts, syncguard.WithObserver(obs))
			}
			g := syncguard.New(d, opts...)
			caller := tp.Tracer("bench")
			name := "trace=" + tracing + "/otel=" + mode
			b.Run(name, func(b *testing.B) {
				var next atomic.Int64
				// 64 goroutines whatever GOMAXPROCS is.
				b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
				cpu0 := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					key := "bench:" + strconv.FormatInt(next.Add(1), 10)
					for pb.Next() {
						ctx, span := context.Background(), trace.Span(nil)
						if sdktp != nil {
							ctx, span = caller.Start(ctx, "request")
						}
						l, err := g.Acquire(ctx, key)
						if err != nil {
							b.Error(err)
							return
						}
						if ok, err := l.Release(ctx); !ok || err != nil {
							b.Errorf("Release = %v, %v", ok, err)
							return
						}
						if span != nil {
							span.End()
						}
					}
				})
				// This process's CPU time per pair (user+system, every
				// goroutine): steadier than ns/op on a shared machine,
				// where other jobs' load changes the wall time. The Redis
				// server's CPU is not included.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
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

// floorObserver is the probe of trace=none/otel=floor: it counts every
// event by type and result and adds its latency to one of 16 buckets, with
// atomics only.
type floorObserver struct {
	counts  [8][3]atomic.Int64
	buckets [8][16]atomic.Int64
}

var floorBounds = [...]time.Duration{100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second}

func (f *floorObserver) OnEvent(syncguard.Event) {}
func (f *floorObserver) StartOperation(context.Context, syncguard.EventType) context.Context {
	return nil
}
func (f *floorObserver) NeedsDigests(context.Context) bool { return false }
func (f *floorObserver) OnEventContext(_ context.Context, e syncguard.Event) {
	t := len(e.Type) % 8
	r := 0
	switch e.Result {
	case syncguard.ResultFail:
		r = 1
	case syncguard.ResultError:
		r = 2
	}
	f.counts[t][r].Add(1)
	v := e.Latency
	if e.Type == syncguard.EventLeaseRelease {
		v = e.Held
	}
	b := 0
	for b < len(floorBounds) && v > floorBounds[b] {
		b++
	}
	f.buckets[t][b].Add(1)
}
