package redis

import (
	"testing"
	"time"

	"github.com/syncguard/syncguard/internal/faultproxy"
)

// faultProxy is an in-process fault proxy (internal/faultproxy) between a
// client and Redis.
type faultProxy struct {
	p *faultproxy.Proxy
}

// startProxy starts a proxy to upstream on a loopback port; it is stopped
// when t ends (or by stop).
func startProxy(t testing.TB, upstream string) *faultProxy {
	t.Helper()
	p, err := faultproxy.Start(upstream)
	if err != nil {
		t.Fatalf("faultproxy start: %v", err)
	}
	fp := &faultProxy{p: p}
	t.Cleanup(fp.stop)
	return fp
}

func (fp *faultProxy) addr() string { return fp.p.Addr() }

// stop refuses new connections and closes open ones, as a stopped server
// would. Calling it again does nothing.
func (fp *faultProxy) stop() { fp.p.Close() }

// latency adds d of latency to both directions.
func (fp *faultProxy) latency(t testing.TB, d time.Duration) {
	t.Helper()
	fp.p.Slow(d)
}

// cut holds every request and reply (nothing passes in either direction)
// until heal; the TCP connections stay open, like a partition or a server
// that vanished without closing them.
func (fp *faultProxy) cut(t testing.TB) {
	t.Helper()
	fp.p.Blackhole(true)
}

// reset makes the proxy reset connections as soon as a reply comes back
// from Redis: requests are executed, their replies lost.
func (fp *faultProxy) reset(t testing.TB) {
	t.Helper()
	fp.p.Reset(true)
}

// dropConns closes every open connection through the proxy, which keeps
// listening: the client redials.
func (fp *faultProxy) dropConns() { fp.p.DropConns() }

// heal removes every fault.
func (fp *faultProxy) heal() {
	fp.p.Blackhole(false)
	fp.p.Reset(false)
	fp.p.Slow(0)
}
