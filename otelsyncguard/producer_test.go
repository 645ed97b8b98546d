package otelsyncguard_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/otelsyncguard"
)

// series is one collected data point, as both modes must report it.
type series struct {
	Name, Attrs string
	Value       int64    // counters
	Count       uint64   // histograms
	Buckets     []uint64 // histograms
	Sum         float64  // histograms (seconds)
}

// readSeries collects r's metrics as series, sorted.
func readSeries(t *testing.T, r *sdkmetric.ManualReader) []series {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []series
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelsyncguard.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, otelsyncguard.ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if d.Temporality != metricdata.CumulativeTemporality || !d.IsMonotonic {
					t.Errorf("%s: temporality %v, monotonic %v", m.Name, d.Temporality, d.IsMonotonic)
				}
				for _, p := range d.DataPoints {
					out = append(out, series{Name: m.Name, Attrs: p.Attributes.Encoded(attribute.DefaultEncoder()), Value: p.Value})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out = append(out, series{Name: m.Name, Attrs: p.Attributes.Encoded(attribute.DefaultEncoder()),
						Count: p.Count, Buckets: p.BucketCounts, Sum: p.Sum})
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// TestProducerMatchesInstruments: the same events give the same series
// with WithProducer as through the SDK's instruments: counter values,
// histogram counts, bucket counts (values on a bucket bound included) and
// sums.
func TestProducerMatchesInstruments(t *testing.T) {
	t.Parallel()
	caps := memory.New().Capabilities()
	instReader := sdkmetric.NewManualReader()
	instMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(instReader))
	inst, err := otelsyncguard.New(caps, otelsyncguard.WithMeterProvider(instMP))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := otelsyncguard.New(caps, otelsyncguard.WithProducer())
	if err != nil {
		t.Fatal(err)
	}
	prodReader := sdkmetric.NewManualReader(sdkmetric.WithProducer(prod))
	prodMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(prodReader))
	t.Cleanup(func() {
		_ = instMP.Shutdown(context.Background())
		_ = prodMP.Shutdown(context.Background())
	})
	if got := readSeries(t, prodReader); len(got) != 0 {
		t.Errorf("before any event: %v", got)
	}
	ms := time.Millisecond
	events := []syncguard.Event{
		{Type: syncguard.EventAcquire, Result: syncguard.ResultOK, Latency: 100 * time.Microsecond}, // on a bound
		{Type: syncguard.EventAcquire, Result: syncguard.ResultFail, Latency: 101 * time.Microsecond},
		{Type: syncguard.EventAcquire, Result: syncguard.ResultError, Code: driver.ServiceUnavailable, Latency: 7 * time.Second},
		{Type: syncguard.EventAcquire, Result: syncguard.ResultOK, Handoff: true, Latency: 3 * ms},
		{Type: syncguard.EventAcquisition, Result: syncguard.ResultOK, Latency: ms},
		{Type: syncguard.EventAcquisition, Result: syncguard.ResultFail, Latency: 0},
		{Type: syncguard.EventAcquisition, Result: syncguard.ResultError, Code: driver.AcquisitionTimeout, Latency: 40 * time.Second},
		{Type: syncguard.EventAcquisition, Result: syncguard.ResultError, Code: driver.ServiceUnavailable, Latency: 2 * ms},
		{Type: syncguard.EventRelease, Result: syncguard.ResultOK, Latency: 250 * time.Microsecond},
		{Type: syncguard.EventLeaseRelease, Result: syncguard.ResultOK, Held: 2 * time.Hour},
		{Type: syncguard.EventLeaseRelease, Result: syncguard.ResultOK, Held: 5 * ms},
		{Type: syncguard.EventExtend, Result: syncguard.ResultFail, AutoExtend: true, Latency: ms},
		{Type: syncguard.EventExtend, Result: syncguard.ResultError, Code: driver.NetworkTimeout, AutoExtend: true, Latency: 3 * time.Second},
		{Type: syncguard.EventLookup, Result: syncguard.ResultOK, Latency: 10 * time.Microsecond},
		{Type: syncguard.EventRate, Result: syncguard.ResultOK, Latency: 400 * time.Microsecond},
		{Type: syncguard.EventRate, Result: syncguard.ResultFail, Reason: "limited", Latency: 500 * time.Microsecond},
		{Type: syncguard.EventOnce, Result: syncguard.ResultOK, Latency: ms},
		{Type: syncguard.EventOnce, Result: syncguard.ResultOK, Reason: "replayed", Latency: ms},
		{Type: syncguard.EventOnce, Result: syncguard.ResultFail, Reason: "in-progress", Latency: ms},
		{Type: syncguard.EventLost, Result: syncguard.ResultFail, Reason: "expired"},
	}
	for round := range 2 { // the second collection is cumulative
		for _, e := range events {
			inst.OnEventContext(context.Background(), e)
			prod.OnEventContext(context.Background(), e)
		}
		want, got := readSeries(t, instReader), readSeries(t, prodReader)
		if len(want) == 0 {
			t.Fatal("the instruments collected nothing")
		}
		sortSeries := cmpopts.SortSlices(func(a, b series) bool {
			if a.Name != b.Name {
				return a.Name < b.Name
			}
			return a.Attrs < b.Attrs
		})
		approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(a)) })
		if diff := cmp.Diff(want, got, sortSeries, approx); diff != "" {
			t.Errorf("round %d: producer series differ from the instruments' (-instruments +producer):\n%s", round, diff)
		}
	}
}

// TestProduceWithoutProducerMode: an Observer made without WithProducer
// produces nothing (its metrics go to the meter provider).
func TestProduceWithoutProducerMode(t *testing.T) {
	t.Parallel()
	obs, err := otelsyncguard.New(memory.New().Capabilities())
	if err != nil {
		t.Fatal(err)
	}
	obs.OnEventContext(context.Background(), syncguard.Event{Type: syncguard.EventAcquisition, Result: syncguard.ResultOK})
	if sm, err := obs.Produce(context.Background()); sm != nil || err != nil {
		t.Errorf("Produce = %v, %v; want nil, nil", sm, err)
	}
}

// TestProducerConcurrent: events from several goroutines, new attribute
// sets (error codes) among them, while a reader collects: every
// collection is cumulative (no series goes down, a histogram's count is
// the sum of its buckets) and the last one has counted every event.
func TestProducerConcurrent(t *testing.T) {
	t.Parallel()
	obs, err := otelsyncguard.New(memory.New().Capabilities(), otelsyncguard.WithProducer())
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(obs))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	const goroutines, rounds = 4, 200
	codes := []driver.Code{driver.ServiceUnavailable, driver.NetworkTimeout, driver.Internal}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				obs.OnEventContext(context.Background(), syncguard.Event{Type: syncguard.EventAcquisition, Result: syncguard.ResultOK, Latency: time.Duration(i) * time.Millisecond})
				obs.OnEventContext(context.Background(), syncguard.Event{Type: syncguard.EventAcquire, Result: syncguard.ResultError,
					Code: codes[(g+i)%len(codes)], Latency: time.Duration(i) * time.Microsecond})
				obs.OnEventContext(context.Background(), syncguard.Event{Type: syncguard.EventLeaseRelease, Result: syncguard.ResultOK, Held: time.Second})
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	key := func(s series) string { return s.Name + "{" + s.Attrs + "}" }
	prev := map[string]series{}
	check := func() map[string]series {
		cur := map[string]series{}
		for _, s := range readSeries(t, reader) {
			var n uint64
			for _, b := range s.Buckets {
				n += b
			}
			if n != s.Count {
				t.Errorf("%s: count %d, buckets sum to %d", key(s), s.Count, n)
			}
			if p, ok := prev[key(s)]; ok && (s.Value < p.Value || s.Count < p.Count || s.Sum < p.Sum) {
				t.Errorf("%s went down: %+v after %+v", key(s), s, p)
			}
			cur[key(s)] = s
		}
		for k := range prev {
			if _, ok := cur[k]; !ok {
				t.Errorf("%s vanished", k)
			}
		}
		prev = cur
		return cur
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		check()
	}
	last := check()
	total := func(name string, hist bool) uint64 {
		var n uint64
		for _, s := range last {
			if s.Name == name {
				if hist {
					n += s.Count
				} else {
					n += uint64(s.Value)
				}
			}
		}
		return n
	}
	const events = goroutines * rounds
	for _, tc := range []struct {
		name string
		hist bool
	}{
		{otelsyncguard.MetricAcquisitions, false},
		{otelsyncguard.MetricWaitDuration, true},
		{otelsyncguard.MetricAttempts, false},
		{otelsyncguard.MetricBackendDuration, true},
		{otelsyncguard.MetricHoldDuration, true},
	} {
		if got := total(tc.name, tc.hist); got != events {
			t.Errorf("%s: %d, want %d", tc.name, got, events)
		}
	}
}
