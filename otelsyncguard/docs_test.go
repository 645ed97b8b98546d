package otelsyncguard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/otelsyncguard"
)

const docPath = "../docs/observability.md"

// TestPrometheusNames exports through the otel Prometheus exporter, logs
// the metric family names Prometheus sees, and requires each of them in
// docs/observability.md, so that the documented names stay true; with
// WithProducer (the exporter's producer) the families are the same.
func TestPrometheusNames(t *testing.T) {
	t.Parallel()
	withMP := prometheusNames(t, false)
	withProducer := prometheusNames(t, true)
	if diff := cmp.Diff(withMP, withProducer); diff != "" {
		t.Errorf("metric families with WithProducer differ (-meter provider +producer):\n%s", diff)
	}
}

// prometheusNames exercises an Observer exported through the Prometheus
// exporter (as a producer if producer) and returns the family names.
func prometheusNames(t *testing.T, producer bool) []string {
	t.Helper()
	d := memory.New()
	reg := prometheus.NewRegistry()
	var (
		obs *otelsyncguard.Observer
		err error
	)
	promOpts := []otelprom.Option{otelprom.WithRegisterer(reg), otelprom.WithoutTargetInfo()}
	if producer {
		obs, err = otelsyncguard.New(d.Capabilities(), otelsyncguard.WithProducer())
		if err != nil {
			t.Fatal(err)
		}
		promOpts = append(promOpts, otelprom.WithProducer(obs))
	}
	exporter, err := otelprom.New(promOpts...)
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	if !producer {
		obs, err = otelsyncguard.New(d.Capabilities(), otelsyncguard.WithMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	g := syncguard.New(d, syncguard.WithObserver(obs))
	other := syncguard.New(d)
	held, err := other.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, held.Close)
	l, err := g.Acquire(ctx, "k", syncguard.RetryDelay(5*time.Millisecond), syncguard.TTL(150*time.Millisecond), syncguard.AutoExtend(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Release(ctx, "", l.LockID()); err != nil {
		t.Fatal(err)
	}
	<-l.Lost()
	l.Close()
	lim, err := syncguard.NewRateLimiter(d, syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1}, syncguard.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := lim.Allow(ctx, "client"); err != nil {
			t.Fatal(err)
		}
	}
	once, err := syncguard.NewOncePerKey[int](g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := once.Do(ctx, "job", func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	sort.Strings(names)
	if len(names) < 10 {
		t.Errorf("%d metric families, want the 10 of otelsyncguard: %v", len(names), names)
	}
	for _, f := range families {
		if f.GetName() != "syncguard_lock_acquisitions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			// The PromQL examples of the doc use these label names.
			if !slices.Contains(labels, "syncguard_outcome") || !slices.Contains(labels, "db_system") {
				t.Errorf("%s labels %v, want syncguard_outcome and db_system", f.GetName(), labels)
			}
		}
	}
	for _, n := range names {
		t.Logf("prometheus metric %s (producer %v)", n, producer)
		if strings.HasPrefix(n, "syncguard_") && !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("%s is not listed in %s", n, docPath)
		}
	}
	return names
}

var goFence = regexp.MustCompile("(?m)^```go\n")

// TestDocsCompile builds every complete program in docs/observability.md
// that imports this module (the repository's doc check leaves them to
// this module, whose dependencies they need).
func TestDocsCompile(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	tmp := t.TempDir()
	overlay := map[string]string{}
	var pkgs []string
	for _, loc := range goFence.FindAllStringIndex(s, -1) {
		rest := s[loc[1]:]
		end := strings.Index(rest, "\n```")
		if end < 0 {
			t.Fatalf("unterminated code block at byte %d", loc[1])
		}
		code := rest[:end+1]
		if !strings.HasPrefix(strings.TrimSpace(code), "package ") || !strings.Contains(code, "syncguard/otelsyncguard") {
			continue
		}
		n := len(pkgs)
		src := filepath.Join(tmp, fmt.Sprintf("doc%d.go", n))
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		overlay[filepath.Join(wd, "testdata", fmt.Sprintf("doc%d", n), "main.go")] = src
		pkgs = append(pkgs, fmt.Sprintf("./testdata/doc%d", n))
	}
	if len(pkgs) == 0 {
		t.Fatalf("no runnable otelsyncguard block in %s", docPath)
	}
	ov, _ := json.Marshal(map[string]any{"Replace": overlay})
	ovPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", append([]string{"build", "-overlay=" + ovPath, "-o", filepath.Join(tmp, "bin") + string(filepath.Separator)}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Errorf("runnable blocks of %s do not compile:\n%s", docPath, out)
	}
	t.Logf("%d runnable blocks compiled", len(pkgs))
}
