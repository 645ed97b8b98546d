package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// faultProxy is an in-process toxiproxy between a client and Redis.
type faultProxy struct {
	p *toxiproxy.Proxy
}

// startProxy starts a proxy to upstream on a loopback port; it is stopped
// when t ends (or by stop).
func startProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, fmt.Sprintf("redis-%d", time.Now().UnixNano()), "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy start: %v", err)
	}
	fp := &faultProxy{p: p}
	t.Cleanup(fp.stop)
	return fp
}

func (fp *faultProxy) addr() string { return fp.p.Listen }

func (fp *faultProxy) stop() {
	if fp.p != nil {
		fp.p.Stop()
	}
}

// latency adds d of latency to both directions.
func (fp *faultProxy) latency(t testing.TB, d time.Duration) {
	t.Helper()
	for _, dir := range []string{"upstream", "downstream"} {
		js := fmt.Sprintf(`{"name":"lat_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`, dir, dir, d.Milliseconds())
		if _, err := fp.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("add latency toxic: %v", err)
		}
	}
}

// cut drops every request on the floor (the upstream direction delivers
// nothing) until heal; the TCP connections stay open, like a partition.
func (fp *faultProxy) cut(t testing.TB) {
	t.Helper()
	js := `{"name":"cut","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`
	if _, err := fp.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatalf("add timeout toxic: %v", err)
	}
}

// reset makes the proxy reset connections as soon as a reply comes back
// from Redis: requests are executed, their replies lost.
func (fp *faultProxy) reset(t testing.TB) {
	t.Helper()
	js := `{"name":"reset","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`
	if _, err := fp.p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatalf("add reset_peer toxic: %v", err)
	}
}

// heal removes every toxic.
func (fp *faultProxy) heal() {
	fp.p.Toxics.ResetToxics(context.Background())
}
