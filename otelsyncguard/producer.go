package otelsyncguard

import (
	"context"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

var _ sdkmetric.Producer = (*Observer)(nil)

// Histogram bucket bounds (seconds).
var (
	waitBounds    = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	holdBounds    = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600}
	backendBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// Units and descriptions of the metrics.
var (
	metricUnit = map[string]string{
		MetricAcquisitions: "{acquisition}", MetricAttempts: "{attempt}", MetricHandoffs: "{acquisition}",
		MetricLeasesLost: "{lease}", MetricAutoExtendFailures: "{extend}", MetricRateDecisions: "{request}",
		MetricIdempotency: "{request}", MetricWaitDuration: "s", MetricHoldDuration: "s", MetricBackendDuration: "s",
	}
	metricDesc = map[string]string{
		MetricAcquisitions:       "Guard acquisitions by outcome.",
		MetricAttempts:           "Backend acquisition attempts by outcome.",
		MetricHandoffs:           "Successful acquisition attempts of queued waiters.",
		MetricLeasesLost:         "Leases lost before their release.",
		MetricAutoExtendFailures: "Failed heartbeat extends.",
		MetricRateDecisions:      "Rate-limit decisions.",
		MetricIdempotency:        "OncePerKey calls by outcome.",
		MetricWaitDuration:       "Time to acquire a lock, waiting included.",
		MetricHoldDuration:       "Time a lease was held.",
		MetricBackendDuration:    "Latency of backend calls.",
	}
)

// histogram is one series of an explicit-bucket histogram of durations,
// aggregated with atomic additions (WithProducer).
type histogram struct {
	bounds []float64 // seconds, for the data points
	ns     []int64   // the same bounds in nanoseconds
	counts []atomic.Uint64
	sum    atomic.Uint64 // float64 bits, seconds (an int64 of nanoseconds would wrap after 292 years of hold time)
}

func newHistogram(bounds []float64) *histogram {
	h := &histogram{bounds: bounds, ns: make([]int64, len(bounds)), counts: make([]atomic.Uint64, len(bounds)+1)}
	for i, b := range bounds {
		h.ns[i] = int64(b * float64(time.Second))
	}
	return h
}

// add counts v in the bucket whose upper bound is the first ≥ v, as the
// SDK's explicit-bucket aggregation does.
func (h *histogram) add(v time.Duration) {
	n := int64(v)
	i, _ := slices.BinarySearch(h.ns, n)
	h.counts[i].Add(1)
	for add := v.Seconds(); ; {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+add)) {
			break
		}
	}
}

// point returns the series as a cumulative data point, or false if it
// has counted nothing.
func (h *histogram) point() (metricdata.HistogramDataPoint[float64], bool) {
	var p metricdata.HistogramDataPoint[float64]
	p.BucketCounts = make([]uint64, len(h.counts))
	for i := range h.counts {
		p.BucketCounts[i] = h.counts[i].Load()
		p.Count += p.BucketCounts[i]
	}
	if p.Count == 0 {
		return p, false
	}
	p.Bounds = slices.Clone(h.bounds) // the reader's to keep
	p.Sum = math.Float64frombits(h.sum.Load())
	return p, true
}

// Produce implements [sdkmetric.Producer] for an Observer made with
// [WithProducer]: its counters and histograms as cumulative data, one
// point per attribute set that has counted anything. Without WithProducer
// it returns nothing.
func (o *Observer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	if !o.producer {
		return nil, nil
	}
	now := time.Now()
	o.setsMu.Lock()
	series := o.series
	o.setsMu.Unlock()
	sums := map[string]*metricdata.Sum[int64]{}
	hists := map[string]*metricdata.Histogram[float64]{}
	var names []string
	for _, s := range series {
		def := seriesDefs[s.metric]
		if name := def.counter; name != "" {
			if n := s.n.Load(); n > 0 {
				d := sums[name]
				if d == nil {
					d = &metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true}
					sums[name] = d
					names = append(names, name)
				}
				d.DataPoints = append(d.DataPoints, metricdata.DataPoint[int64]{Attributes: s.set, StartTime: o.start, Time: now, Value: n})
			}
		}
		if s.hist == nil {
			continue
		}
		p, ok := s.hist.point()
		if !ok {
			continue
		}
		p.Attributes, p.StartTime, p.Time = s.set, o.start, now
		name := def.histogram
		d := hists[name]
		if d == nil {
			d = &metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality}
			hists[name] = d
			names = append(names, name)
		}
		d.DataPoints = append(d.DataPoints, p)
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	sm := metricdata.ScopeMetrics{Scope: instrumentation.Scope{Name: ScopeName}}
	for _, name := range names {
		m := metricdata.Metrics{Name: name, Description: metricDesc[name], Unit: metricUnit[name]}
		if d := sums[name]; d != nil {
			m.Data = *d
		} else {
			m.Data = *hists[name]
		}
		sm.Metrics = append(sm.Metrics, m)
	}
	return []metricdata.ScopeMetrics{sm}, nil
}
