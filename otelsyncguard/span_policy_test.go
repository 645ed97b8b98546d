package otelsyncguard_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/otelsyncguard"
)

// TestSpanPolicy: which spans an acquire+release pair, an OncePerKey call
// and an IsLocked outside any operation make, by the caller's context, the
// sampler and WithRootSpans. Metrics are counted in every case.
func TestSpanPolicy(t *testing.T) {
	t.Parallel()
	sampledRemote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	unsampledRemote := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}, Remote: true,
	}))
	pair := []string{"syncguard.acquire", "syncguard.backend.acquire", "syncguard.release"}
	// An OncePerKey.Do reads its record before and after taking the lock,
	// then claims and completes it: four record calls.
	rec := "syncguard.backend.record"
	once := []string{"syncguard.acquire", "syncguard.backend.acquire", rec, rec, rec, rec, "syncguard.once", "syncguard.release"}
	tests := []struct {
		name    string
		sampler sdktrace.Sampler
		roots   bool
		// parent returns the caller's context and a function that ends
		// the caller's span, if any.
		parent   func(tp trace.TracerProvider) (context.Context, func())
		wantPair []string // spans of an acquire+release pair (sorted)
		wantOnce []string // spans of an OncePerKey.Do
		wantIs   []string // spans of an IsLocked
	}{
		{
			name:   "no parent, roots off (default)",
			parent: background,
		},
		{
			name: "no parent, roots on", roots: true, parent: background,
			wantPair: pair, wantOnce: once,
		},
		{
			name: "no parent, roots on, sampler drops", roots: true, parent: background,
			sampler: sdktrace.ParentBased(sdktrace.NeverSample()),
		},
		{
			name: "sampled local parent", parent: localParent,
			wantPair: with(pair, "test.request"), wantOnce: with(once, "test.request"),
			wantIs: []string{"syncguard.backend.lookup", "test.request"},
		},
		{
			name: "unsampled local parent", parent: localParent, roots: true,
			sampler: sdktrace.ParentBased(sdktrace.NeverSample()),
		},
		{
			name: "sampled remote parent", parent: fixed(sampledRemote),
			wantPair: pair, wantOnce: once,
		},
		{
			name: "unsampled remote parent, AlwaysSample", parent: fixed(unsampledRemote), roots: true,
			sampler: sdktrace.AlwaysSample(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := func(f func(ctx context.Context, g *syncguard.Guard[memory.Capabilities])) ([]string, float64) {
				t.Helper()
				d := memory.New()
				reader := sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				rec := tracetest.NewSpanRecorder()
				sampler := tt.sampler
				if sampler == nil {
					sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
				}
				tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
				t.Cleanup(func() {
					_ = mp.Shutdown(context.Background())
					_ = tp.Shutdown(context.Background())
				})
				obs, err := otelsyncguard.New(d.Capabilities(), otelsyncguard.WithMeterProvider(mp),
					otelsyncguard.WithTracerProvider(tp), otelsyncguard.WithRootSpans(tt.roots))
				if err != nil {
					t.Fatal(err)
				}
				g := syncguard.New(d, syncguard.WithObserver(obs))
				ctx, end := tt.parent(tp)
				f(ctx, g)
				end()
				var names []string
				for _, s := range rec.Ended() {
					names = append(names, s.Name())
				}
				slices.Sort(names)
				return names, collect(t, reader).total(otelsyncguard.MetricBackendDuration)
			}
			got, calls := run(func(ctx context.Context, g *syncguard.Guard[memory.Capabilities]) {
				l, err := g.Acquire(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := l.Release(ctx); err != nil {
					t.Fatal(err)
				}
			})
			if diff := cmp.Diff(tt.wantPair, got); diff != "" {
				t.Errorf("pair spans (-want +got):\n%s", diff)
			}
			if calls != 2 {
				t.Errorf("pair: %v backend calls measured, want 2", calls)
			}
			got, _ = run(func(ctx context.Context, g *syncguard.Guard[memory.Capabilities]) {
				o, err := syncguard.NewOncePerKey[int](g)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := o.Do(ctx, "job", func(context.Context) (int, error) { return 1, nil }); err != nil {
					t.Fatal(err)
				}
			})
			if diff := cmp.Diff(tt.wantOnce, got); diff != "" {
				t.Errorf("OncePerKey spans (-want +got):\n%s", diff)
			}
			got, calls = run(func(ctx context.Context, g *syncguard.Guard[memory.Capabilities]) {
				if _, err := g.IsLocked(ctx, "k"); err != nil {
					t.Fatal(err)
				}
			})
			if diff := cmp.Diff(tt.wantIs, got); diff != "" {
				t.Errorf("IsLocked spans (-want +got):\n%s", diff)
			}
			if calls != 1 {
				t.Errorf("IsLocked: %v backend calls measured, want 1", calls)
			}
		})
	}
}

func background(trace.TracerProvider) (context.Context, func()) {
	return context.Background(), func() {}
}

func localParent(tp trace.TracerProvider) (context.Context, func()) {
	ctx, span := tp.Tracer("test").Start(context.Background(), "test.request")
	return ctx, func() { span.End() }
}

func fixed(ctx context.Context) func(trace.TracerProvider) (context.Context, func()) {
	return func(trace.TracerProvider) (context.Context, func()) { return ctx, func() {} }
}

// with returns names and more, sorted.
func with(names []string, more ...string) []string {
	out := slices.Concat(names, more)
	slices.Sort(out)
	return out
}
