package otelsyncguard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
	"github.com/syncguard/syncguard/internal/drivertest"
	"github.com/syncguard/syncguard/otelsyncguard"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rawMark starts every key the tests use, so that a raw key in a metric or
// span attribute is easy to find.
const rawMark = "otel-raw-key:"

// TestMetricsAndSpans runs acquire, contention (with a hand-off), a
// TryAcquire refusal, an acquisition timeout, a lost lease (heartbeat
// finds the lock gone), rate-limit refusal and idempotency replay and
// conflict (through httpmw) on each backend, reads the metrics back
// through a ManualReader and the spans through a SpanRecorder, logs every
// metric and span name with its value, and checks that each is non-zero,
// that spans nest under the caller's span, and that no raw key or lock ID
// appears anywhere.
func TestMetricsAndSpans(t *testing.T) {
	t.Parallel()
	// producer: the Observer aggregates its metrics (WithProducer) and
	// the reader reads them from it.
	for _, producer := range []bool{false, true} {
		suffix := ""
		if producer {
			suffix = "/producer"
		}
		t.Run("memory"+suffix, func(t *testing.T) {
			t.Parallel()
			exercise(t, memory.New(), producer)
		})
		t.Run("redis"+suffix, func(t *testing.T) {
			t.Parallel()
			d, ok := drivertest.Redis(t)
			if !ok {
				t.Skip("redis unavailable")
			}
			exercise(t, d, producer)
		})
		t.Run("postgres"+suffix, func(t *testing.T) {
			t.Parallel()
			d, ok := drivertest.Postgres(t)
			if !ok {
				t.Skip("postgres unavailable")
			}
			exercise(t, d, producer)
		})
	}
}

type fixture struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	obs    *otelsyncguard.Observer
}

func newFixture(t *testing.T, caps driver.Capabilities) fixture {
	return newFixtureMode(t, caps, false)
}

// newFixtureMode is newFixture with the Observer's metrics aggregated by
// the Observer itself (WithProducer) if producer.
func newFixtureMode(t *testing.T, caps driver.Capabilities, producer bool) fixture {
	t.Helper()
	f := fixture{spans: tracetest.NewSpanRecorder()}
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	var (
		mp  *sdkmetric.MeterProvider
		obs *otelsyncguard.Observer
		err error
	)
	if producer {
		obs, err = otelsyncguard.New(caps, otelsyncguard.WithProducer(), otelsyncguard.WithTracerProvider(f.tp))
		f.reader = sdkmetric.NewManualReader(sdkmetric.WithProducer(obs))
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	} else {
		f.reader = sdkmetric.NewManualReader()
		mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
		obs, err = otelsyncguard.New(caps, otelsyncguard.WithMeterProvider(mp), otelsyncguard.WithTracerProvider(f.tp))
	}
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = f.tp.Shutdown(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	f.obs = obs
	return f
}

func exercise[C driver.Fenced](t *testing.T, d driver.Driver[C], producer bool) {
	f := newFixtureMode(t, d.Capabilities(), producer)
	g := syncguard.New(d, syncguard.WithObserver(f.obs))
	other := syncguard.New(d) // another process, not observed
	ctx, root := f.tp.Tracer("test").Start(context.Background(), "test.request")
	var lockIDs []string

	// Acquire and release.
	l, err := g.Acquire(ctx, rawMark+"plain")
	if err != nil {
		t.Fatal(err)
	}
	lockIDs = append(lockIDs, l.LockID())
	if locked, err := g.IsLocked(ctx, rawMark+"plain"); !locked || err != nil {
		t.Fatalf("IsLocked = %v, %v", locked, err)
	}
	if _, err := g.LookupID(ctx, l.LockID()); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// Contention: another process holds the key and releases it while
	// the Guard waits (queued as a hand-off waiter).
	held, err := other.Acquire(ctx, rawMark+"contended")
	if err != nil {
		t.Fatal(err)
	}
	lockIDs = append(lockIDs, held.LockID())
	time.AfterFunc(50*time.Millisecond, held.Close)
	l, err = g.Acquire(ctx, rawMark+"contended", syncguard.RetryDelay(20*time.Millisecond), syncguard.Timeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	lockIDs = append(lockIDs, l.LockID())
	l.Close()

	// TryAcquire refused, and an acquisition that runs out of retries.
	held, err = other.Acquire(ctx, rawMark+"busy")
	if err != nil {
		t.Fatal(err)
	}
	lockIDs = append(lockIDs, held.LockID())
	if _, err := g.TryAcquire(ctx, rawMark+"busy"); !errors.Is(err, syncguard.ErrLocked) {
		t.Fatalf("TryAcquire: %v", err)
	}
	if _, err := g.Acquire(ctx, rawMark+"busy", syncguard.MaxRetries(1), syncguard.RetryDelay(5*time.Millisecond)); driver.CodeOf(err) != driver.AcquisitionTimeout {
		t.Fatalf("Acquire of a held key: %v", err)
	}
	held.Close()

	// A lost lease: the lock is released behind the holder's back, and
	// its heartbeat finds it gone.
	l, err = g.Acquire(ctx, rawMark+"lost", syncguard.TTL(300*time.Millisecond), syncguard.AutoExtend(true))
	if err != nil {
		t.Fatal(err)
	}
	lockIDs = append(lockIDs, l.LockID())
	if res, err := d.Release(ctx, "", l.LockID()); !res.OK || err != nil {
		t.Fatalf("Release behind the holder's back = %+v, %v", res, err)
	}
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("lease not lost")
	}
	l.Close()

	// Rate limiting through httpmw: a burst of 1, the second request is
	// refused.
	lim, err := syncguard.NewRateLimiter(d.(driver.RateStore), syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1}, syncguard.WithPrefix(rawMark), syncguard.WithObserver(f.obs))
	if err != nil {
		t.Fatal(err)
	}
	rateMW, err := httpmw.RateLimit(lim, httpmw.KeyFunc(func(*http.Request) string { return "client-1" }))
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		w := httptest.NewRecorder()
		rateMW(ok).ServeHTTP(w, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if w.Code != want {
			t.Fatalf("rate-limited request %d: status %d, want %d", i, w.Code, want)
		}
	}

	// Idempotency through httpmw: a request, its replay, and a conflict
	// with a request still running.
	idem, err := httpmw.Idempotency(g, httpmw.Scope(httpmw.ScopeByHeader("Authorization")),
		httpmw.IdempotencyOnceOptions(syncguard.WithPrefix(rawMark)))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	handler := idem(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = w.Write([]byte("created"))
	}))
	post := func(path, key string) *httptest.ResponseRecorder {
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader("{}"))
		r.Header.Set("Authorization", "Bearer client-1")
		r.Header.Set(httpmw.HeaderIdempotencyKey, key)
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		return w
	}
	if w := post("/", "key-1"); w.Code != http.StatusOK || w.Header().Get(httpmw.DefaultReplayHeader) != "" {
		t.Fatalf("first request: %d %v", w.Code, w.Header())
	}
	if w := post("/", "key-1"); w.Code != http.StatusOK || w.Header().Get(httpmw.DefaultReplayHeader) != "true" {
		t.Fatalf("replay: %d %v", w.Code, w.Header())
	}
	var wg sync.WaitGroup
	wg.Go(func() { post("/slow", "key-2") })
	<-entered
	if w := post("/slow", "key-2"); w.Code != http.StatusConflict {
		t.Errorf("concurrent request: %d, want 409", w.Code)
	}
	close(release)
	wg.Wait()
	root.End()

	metrics := collect(t, f.reader)
	var summary []string
	for _, name := range []string{
		otelsyncguard.MetricAcquisitions, otelsyncguard.MetricAttempts, otelsyncguard.MetricWaitDuration,
		otelsyncguard.MetricHoldDuration, otelsyncguard.MetricHandoffs, otelsyncguard.MetricLeasesLost,
		otelsyncguard.MetricAutoExtendFailures, otelsyncguard.MetricRateDecisions, otelsyncguard.MetricIdempotency,
		otelsyncguard.MetricBackendDuration,
	} {
		if metrics.total(name) == 0 {
			t.Errorf("metric %s: no non-zero value", name)
		}
		summary = append(summary, fmt.Sprintf("%s=%v", name, metrics.total(name)))
	}
	t.Logf("metrics (counter sums, histogram counts): %s", strings.Join(summary, " "))
	for _, want := range []struct {
		metric string
		attr   attribute.KeyValue
	}{
		{otelsyncguard.MetricAcquisitions, otelsyncguard.AttrOutcome.String("acquired")},
		{otelsyncguard.MetricAcquisitions, otelsyncguard.AttrOutcome.String("contended")},
		{otelsyncguard.MetricAcquisitions, otelsyncguard.AttrOutcome.String("timed_out")},
		{otelsyncguard.MetricAttempts, otelsyncguard.AttrOutcome.String("contended")},
		{otelsyncguard.MetricRateDecisions, otelsyncguard.AttrDecision.String("allowed")},
		{otelsyncguard.MetricRateDecisions, otelsyncguard.AttrDecision.String("refused")},
		{otelsyncguard.MetricIdempotency, otelsyncguard.AttrOutcome.String("executed")},
		{otelsyncguard.MetricIdempotency, otelsyncguard.AttrOutcome.String("replayed")},
		{otelsyncguard.MetricIdempotency, otelsyncguard.AttrOutcome.String("conflict")},
		{otelsyncguard.MetricBackendDuration, otelsyncguard.AttrOperation.String("record")},
		{otelsyncguard.MetricAutoExtendFailures, otelsyncguard.AttrResult.String("fail")},
	} {
		if metrics.with(want.metric, want.attr) == 0 {
			t.Errorf("metric %s{%s=%s}: no non-zero value", want.metric, want.attr.Key, want.attr.Value.String())
		}
	}
	system := dbSystem(d.Capabilities().Name())
	allowed := map[attribute.Key]bool{
		otelsyncguard.AttrDBSystem: true, otelsyncguard.AttrOutcome: true, otelsyncguard.AttrResult: true,
		otelsyncguard.AttrOperation: true, otelsyncguard.AttrDecision: true, otelsyncguard.AttrErrorType: true,
	}
	for _, p := range metrics.points {
		for _, kv := range p.attrs.ToSlice() {
			if !allowed[kv.Key] {
				t.Errorf("metric %s has attribute %s: not a low-cardinality label", p.name, kv.Key)
			}
			if kv.Key == otelsyncguard.AttrDBSystem && kv.Value.AsString() != system {
				t.Errorf("metric %s: db.system %q, want %q", p.name, kv.Value.AsString(), system)
			}
		}
	}

	spans := f.spans.Ended()
	logSpans(t, spans)
	summary = summary[:0]
	for _, name := range []string{
		otelsyncguard.SpanAcquire, otelsyncguard.SpanRelease, otelsyncguard.SpanOnce, otelsyncguard.SpanLeaseLost,
		"syncguard.backend.acquire", "syncguard.backend.extend", "syncguard.backend.lookup", "syncguard.backend.rate",
		"syncguard.backend.record",
	} {
		summary = append(summary, fmt.Sprintf("%s=%d", name, countSpans(spans, name)))
	}
	t.Logf("spans (count): %s", strings.Join(summary, " "))
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	for _, name := range []string{
		otelsyncguard.SpanAcquire, otelsyncguard.SpanRelease, otelsyncguard.SpanOnce, otelsyncguard.SpanLeaseLost,
		"syncguard.backend.acquire", "syncguard.backend.extend",
		"syncguard.backend.lookup", "syncguard.backend.rate", "syncguard.backend.record",
	} {
		if countSpans(spans, name) == 0 {
			t.Errorf("no span %s", name)
		}
	}
	var attempts int
	for _, s := range spans {
		if s.Name() == "test.request" {
			continue
		}
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %s is not in the caller's trace", s.Name())
		}
		parent, ok := byID[s.Parent().SpanID()]
		switch {
		case !ok:
			t.Errorf("span %s has no recorded parent", s.Name())
		case s.Name() == "syncguard.backend.acquire":
			// Every attempt nests in its acquisition.
			if parent.Name() != otelsyncguard.SpanAcquire {
				t.Errorf("span %s under %s, want under %s", s.Name(), parent.Name(), otelsyncguard.SpanAcquire)
			}
			attempts++
		case s.Name() == otelsyncguard.SpanAcquire || s.Name() == otelsyncguard.SpanRelease:
			if parent.Name() != "test.request" && parent.Name() != otelsyncguard.SpanOnce {
				t.Errorf("span %s under %s", s.Name(), parent.Name())
			}
		}
		for _, kv := range s.Attributes() {
			v := kv.Value.String()
			if strings.Contains(v, rawMark) {
				t.Errorf("span %s attribute %s holds a raw key: %q", s.Name(), kv.Key, v)
			}
			for _, id := range lockIDs {
				if strings.Contains(v, id) {
					t.Errorf("span %s attribute %s holds a raw lock ID", s.Name(), kv.Key)
				}
			}
		}
	}
	if got := metrics.total(otelsyncguard.MetricAttempts); got != float64(attempts) {
		t.Errorf("%s = %v, but %d attempt spans", otelsyncguard.MetricAttempts, got, attempts)
	}
}

func dbSystem(name string) string {
	if name == "postgres" {
		return "postgresql"
	}
	return name
}

// TestRawKeysOptIn: span attributes carry the raw key and lock ID only
// when the Guard's observer was given IncludeRaw.
func TestRawKeysOptIn(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprint(raw), func(t *testing.T) {
			t.Parallel()
			d := memory.New()
			f := newFixture(t, d.Capabilities())
			g := syncguard.New(d, syncguard.WithObserver(f.obs), syncguard.WithRawEvents(func(syncguard.Event) bool { return raw }))
			ctx, root := f.tp.Tracer("test").Start(context.Background(), "test.request")
			l, err := g.Acquire(ctx, rawMark+"k")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			root.End()
			var sawKey, sawID, sawHash bool
			for _, s := range f.spans.Ended() {
				for _, kv := range s.Attributes() {
					switch kv.Key {
					case otelsyncguard.AttrKey:
						sawKey = sawKey || kv.Value.AsString() == rawMark+"k"
					case otelsyncguard.AttrLockID:
						sawID = sawID || kv.Value.AsString() == l.LockID()
					case otelsyncguard.AttrKeyHash:
						sawHash = sawHash || kv.Value.AsString() == driver.HashKey(rawMark+"k")
					}
				}
			}
			if sawKey != raw || sawID != raw || !sawHash {
				t.Errorf("IncludeRaw(%v): raw key %v, raw lock ID %v, key hash %v", raw, sawKey, sawID, sawHash)
			}
		})
	}
}

// TestNewValidation: nil capabilities are an InvalidArgument error.
func TestNewValidation(t *testing.T) {
	t.Parallel()
	if _, err := otelsyncguard.New(nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("New(nil) = %v, want InvalidArgument", err)
	}
}

type point struct {
	name  string
	attrs attribute.Set
	value float64 // sum of a counter, count of a histogram
	sum   float64 // histograms: sum of the recorded values
	hist  bool
}

type collected struct{ points []point }

func (c collected) total(name string) float64 {
	var v float64
	for _, p := range c.points {
		if p.name == name {
			v += p.value
		}
	}
	return v
}

func (c collected) with(name string, kv attribute.KeyValue) float64 {
	var v float64
	for _, p := range c.points {
		if got, ok := p.attrs.Value(kv.Key); p.name == name && ok && got == kv.Value {
			v += p.value
		}
	}
	return v
}

// collect reads the metrics and logs each data point.
func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var c collected
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					c.points = append(c.points, point{name: m.Name, attrs: dp.Attributes, value: float64(dp.Value)})
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					c.points = append(c.points, point{name: m.Name, attrs: dp.Attributes, value: float64(dp.Count), sum: dp.Sum, hist: true})
				}
			default:
				t.Errorf("metric %s: unexpected data %T", m.Name, m.Data)
			}
		}
	}
	sort.Slice(c.points, func(i, j int) bool {
		if c.points[i].name != c.points[j].name {
			return c.points[i].name < c.points[j].name
		}
		return c.points[i].attrs.Encoded(attribute.DefaultEncoder()) < c.points[j].attrs.Encoded(attribute.DefaultEncoder())
	})
	for _, p := range c.points {
		labels := p.attrs.Encoded(attribute.DefaultEncoder())
		if p.hist {
			t.Logf("metric %s{%s} count=%v sum=%.6fs", p.name, labels, p.value, p.sum)
		} else {
			t.Logf("metric %s{%s} = %v", p.name, labels, p.value)
		}
	}
	return c
}

// logSpans logs each span name with its count and total duration.
func logSpans(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	type agg struct {
		n     int
		total time.Duration
	}
	by := map[string]*agg{}
	var names []string
	for _, s := range spans {
		a := by[s.Name()]
		if a == nil {
			a = &agg{}
			by[s.Name()] = a
			names = append(names, s.Name())
		}
		a.n++
		a.total += s.EndTime().Sub(s.StartTime())
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("span %s count=%d total=%v", n, by[n].n, by[n].total.Round(time.Microsecond))
	}
}

func countSpans(spans []sdktrace.ReadOnlySpan, name string) int {
	n := 0
	for _, s := range spans {
		if s.Name() == name {
			n++
		}
	}
	return n
}
