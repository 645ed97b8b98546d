package otelsyncguard_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/otelsyncguard"
)

// TestSpanDigests: in a sampled trace every span of an acquire+release
// pair carries the key's digest, and the release span the lock ID's.
func TestSpanDigests(t *testing.T) {
	t.Parallel()
	d := memory.New()
	f := newFixture(t, d.Capabilities())
	g := syncguard.New(d, syncguard.WithObserver(f.obs))
	ctx, root := f.tp.Tracer("test").Start(context.Background(), "test.request")
	const key = "digests:span"
	l, err := g.Acquire(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	root.End()
	got := map[string][2]string{}
	for _, s := range f.spans.Ended() {
		var h [2]string
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case otelsyncguard.AttrKeyHash:
				h[0] = kv.Value.AsString()
			case otelsyncguard.AttrLockIDHash:
				h[1] = kv.Value.AsString()
			}
		}
		got[s.Name()] = h
	}
	kh, ih := driver.HashKey(key), driver.HashKey(l.LockID())
	want := map[string][2]string{
		"test.request":                              {},
		otelsyncguard.SpanAcquire:                   {kh, ""},
		otelsyncguard.SpanBackendPrefix + "acquire": {kh, ""},
		otelsyncguard.SpanRelease:                   {kh, ih},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("span digests (-want +got):\n%s", diff)
	}
}

// TestNeedsDigests: digests are asked for only where a span may be
// recorded.
func TestNeedsDigests(t *testing.T) {
	t.Parallel()
	caps := memory.New().Capabilities()
	sampled := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	t.Cleanup(func() {
		_ = sampled.Shutdown(context.Background())
		_ = never.Shutdown(context.Background())
	})
	bg := context.Background()
	sampledCtx, s1 := sampled.Tracer("t").Start(bg, "parent")
	defer s1.End()
	unsampledCtx, s2 := never.Tracer("t").Start(bg, "parent")
	defer s2.End()
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
		root bool
		ctx  context.Context
		want bool
	}{
		{"metrics only", tracenoop.NewTracerProvider(), false, sampledCtx, false},
		{"no span", sampled, false, bg, false},
		{"no span, root spans", sampled, true, bg, true},
		{"sampled parent", sampled, false, sampledCtx, true},
		{"unsampled parent", sampled, false, unsampledCtx, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs, err := otelsyncguard.New(caps, otelsyncguard.WithTracerProvider(tc.tp), otelsyncguard.WithRootSpans(tc.root))
			if err != nil {
				t.Fatal(err)
			}
			if got := obs.NeedsDigests(tc.ctx); got != tc.want {
				t.Errorf("NeedsDigests = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCountersOfTwoObservers: two Observers on one meter provider (two
// Guards, say) report one series per attribute set, their sum, and a
// counter stays cumulative across collections.
func TestCountersOfTwoObservers(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	d := memory.New()
	var guards []*syncguard.Guard[memory.Capabilities]
	for range 2 {
		obs, err := otelsyncguard.New(d.Capabilities(), otelsyncguard.WithMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
		guards = append(guards, syncguard.New(d, syncguard.WithObserver(obs)))
	}
	pair := func(g *syncguard.Guard[memory.Capabilities], key string) {
		l, err := g.Acquire(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	acquired := otelsyncguard.AttrOutcome.String("acquired")
	pair(guards[0], "two:a")
	pair(guards[1], "two:b")
	pair(guards[1], "two:c")
	if got := collect(t, reader).with(otelsyncguard.MetricAcquisitions, acquired); got != 3 {
		t.Errorf("first collection: %s{acquired} = %v, want 3", otelsyncguard.MetricAcquisitions, got)
	}
	pair(guards[0], "two:d")
	c := collect(t, reader)
	if got := c.with(otelsyncguard.MetricAcquisitions, acquired); got != 4 {
		t.Errorf("second collection: %s{acquired} = %v, want 4", otelsyncguard.MetricAcquisitions, got)
	}
	n := 0
	for _, p := range c.points {
		if p.name == otelsyncguard.MetricAcquisitions {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%s has %d series, want 1", otelsyncguard.MetricAcquisitions, n)
	}
}

// TestCloseUnregistersCounters: after Close, an Observer's counters are no
// longer collected; a second Close is a no-op.
func TestCloseUnregistersCounters(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	obs, err := otelsyncguard.New(memory.New().Capabilities(), otelsyncguard.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	obs.OnEventContext(context.Background(), syncguard.Event{Type: syncguard.EventAcquisition, Result: syncguard.ResultOK})
	if got := collect(t, reader).total(otelsyncguard.MetricAcquisitions); got != 1 {
		t.Fatalf("before Close: %s = %v, want 1", otelsyncguard.MetricAcquisitions, got)
	}
	for range 2 {
		if err := obs.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if got := collect(t, reader).total(otelsyncguard.MetricAcquisitions); got != 0 {
		t.Errorf("after Close: %s = %v, want 0 (not collected)", otelsyncguard.MetricAcquisitions, got)
	}
}
