package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/delayproxy"
	"github.com/syncguard/syncguard/internal/testkit"
	"go.uber.org/goleak"
)

// Test environment:
//
//	SYNCGUARD_REDIS_ADDR          single node (default 127.0.0.1:6379)
//	SYNCGUARD_REDIS_CLUSTER       comma-separated cluster seeds (scripts/test
//	                              starts one with scripts/redis-cluster)
//	SYNCGUARD_REDIS_FAILOVER_CLUSTER  seeds of a second cluster, which the
//	                              failover test kills a master of
//	SYNCGUARD_REDIS_FAILOVER_DIR  that cluster's directory (pid, conf files)
//	SYNCGUARD_PRIVATE_REDIS_PORT  port of the private redis-server that the
//	                              bound test SIGKILLs (default 6400; the
//	                              reliability module uses the next three)
//	SYNCGUARD_REQUIRE_BACKENDS=1  a missing server fails the tests instead of
//	                              skipping them (set by scripts/test and CI)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis keeps one background goroutine per process for its
		// coarse clock.
		goleak.IgnoreTopFunction("github.com/redis/rueidis/internal/util.(*coarseClock).tick"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._backgroundRead"),
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*pipe)._background"),
		// The cluster client's topology refresh closes idle connections
		// of removed nodes after a delay, also after Close.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}

// privateRedisPort is the port of the package's private redis-server:
// SYNCGUARD_PRIVATE_REDIS_PORT, default 6400.
func privateRedisPort() int {
	if v, err := strconv.Atoi(os.Getenv("SYNCGUARD_PRIVATE_REDIS_PORT")); err == nil && v > 0 {
		return v
	}
	return 6400
}

func requireBackends() bool { return os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" }

// needBackend skips the test, or fails it under SYNCGUARD_REQUIRE_BACKENDS=1.
func needBackend(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireBackends() {
		t.Fatalf("backend required but unavailable: "+format, args...)
	}
	t.Skipf("backend unavailable (set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead): "+format, args...)
}

func singleAddr() string {
	if a := os.Getenv("SYNCGUARD_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func clusterAddrs() []string { return addrList("SYNCGUARD_REDIS_CLUSTER") }

func failoverAddrs() []string { return addrList("SYNCGUARD_REDIS_FAILOVER_CLUSTER") }

func addrList(env string) []string {
	s := os.Getenv(env)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// newClient connects to addrs (a cluster when len > 1 or forced) and
// closes the client when t ends.
func newClient(t testing.TB, addrs []string, tweak ...func(*rueidis.ClientOption)) rueidis.Client {
	t.Helper()
	opt := rueidis.ClientOption{
		InitAddress:  addrs,
		DisableCache: true,
	}
	for _, f := range tweak {
		f(&opt)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		needBackend(t, "connect %v: %v", addrs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		c.Close()
		needBackend(t, "ping %v: %v", addrs, err)
	}
	t.Cleanup(c.Close)
	return c
}

func singleClient(t testing.TB) rueidis.Client { return newClient(t, []string{singleAddr()}) }

func clusterClient(t testing.TB) rueidis.Client {
	t.Helper()
	addrs := clusterAddrs()
	if addrs == nil {
		needBackend(t, "SYNCGUARD_REDIS_CLUSTER is not set (scripts/test starts a cluster)")
	}
	return newClient(t, addrs, func(o *rueidis.ClientOption) { o.ShuffleInit = true })
}

// testPrefix returns a fresh key prefix, so runs never share keys.
func testPrefix(tag string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sgtest:" + tag + ":" + hex.EncodeToString(b[:])
}

// forModes runs body in parallel subtests "single" and "cluster", each on
// a fresh driver over a single-node and a cluster client.
func forModes(t *testing.T, body func(t *testing.T, d *Driver)) {
	t.Helper()
	for _, mode := range []string{"single", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			c := singleClient(t)
			if mode == "cluster" {
				c = clusterClient(t)
			}
			body(t, newDriver(t, c))
		})
	}
}

// newDriver returns a driver over c with a fresh prefix, deleting its keys
// when t ends.
func newDriver(t testing.TB, c rueidis.Client, opts ...Option) *Driver {
	t.Helper()
	opts = append([]Option{WithKeyPrefix(testPrefix("t"))}, opts...)
	d, err := New(c, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		d.Close()
		deletePrefix(c, d.KeyPrefix())
	})
	return d
}

// deletePrefix deletes every key under prefix on every primary.
func deletePrefix(c rueidis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, node := range c.Nodes() {
		var cursor uint64
		for {
			e, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(prefix+":*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				break
			}
			for _, k := range e.Elements {
				_ = c.Do(ctx, c.B().Del().Key(k).Build()).Error()
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
}

// harness is the conformance harness of one store (single node or cluster).
type harness struct {
	testkit.DriverPair[Capabilities, *Driver]
	c      rueidis.Client
	prefix string
	opt    rueidis.ClientOption // of OpenDriver's and DriverWithLatency's clients
}

func newHarness(t *testing.T, c rueidis.Client, tag string) *harness {
	h := &harness{c: c, prefix: testPrefix(tag)}
	var err error
	if h.D, err = New(c, WithKeyPrefix(h.prefix)); err != nil {
		t.Fatal(err)
	}
	if h.DC, err = New(c, WithKeyPrefix(h.prefix), WithCleanupInIsLocked(true)); err != nil {
		t.Fatal(err)
	}
	return h
}

// Close closes the drivers and what the harness opened, then deletes the
// harness's keys.
func (h *harness) Close() {
	h.DriverPair.Close()
	deletePrefix(h.c, h.prefix)
}

// LockIDFor mints an ID that carries key's slot, as Acquire does.
func (h *harness) LockIDFor(key string) string {
	k, _ := driver.NormalizeKey(key)
	kn, _ := h.D.names(k)
	return newLockID(keySlot(kn.body))
}

// WriteRawLock writes a lock and its index directly, with a PX far past
// the logical expiry so that the check sees it.
func (h *harness) WriteRawLock(ctx context.Context, key, lockID string, fence driver.Fence, off time.Duration) error {
	k, kn, err := h.D.keyFor(ctx, key)
	if err != nil {
		return err
	}
	if lockIDSlot(lockID) != keySlot(kn.body) {
		return errors.ErrUnsupported
	}
	idx, _ := h.D.idKey(lockID)
	const script = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'e', string.format('%d', exp), 'a', string.format('%d', now), 'n', ARGV[3], 'k', ARGV[4])
redis.call('PEXPIRE', KEYS[1], 60000)
redis.call('SET', KEYS[2], KEYS[1], 'PX', 60000)
return exp`
	return h.c.Do(ctx, h.c.B().Eval().Script(script).Numkeys(2).Key(kn.lock(), idx).
		Arg(lockID, formatInt(off.Milliseconds()), formatInt(int64(fence)), k).Build()).Error()
}

// SetFence writes key's counter, so the next acquisition gets value+1 (or
// the time floor, if that is higher).
func (h *harness) SetFence(ctx context.Context, key string, value int64) error {
	_, kn, err := h.D.keyFor(ctx, key)
	if err != nil {
		return err
	}
	return h.c.Do(ctx, h.c.B().Hset().Key(kn.lock()).FieldValue().FieldValue("n", formatInt(value)).Build()).Error()
}

func (h *harness) exists(ctx context.Context, key, field string) (bool, error) {
	_, kn, err := h.D.keyFor(ctx, key)
	if err != nil {
		return false, err
	}
	n, err := h.c.Do(ctx, h.c.B().Hexists().Key(kn.lock()).Field(field).Build()).AsInt64()
	return n > 0, err
}

// LockDataExists reports whether the lock of key is stored (the id field
// of its hash; its index entry is deleted in the same script).
func (h *harness) LockDataExists(ctx context.Context, key string) (bool, error) {
	return h.exists(ctx, key, "id")
}

// FenceCounterExists reports whether key's fence counter is stored (the n
// field of the same hash).
func (h *harness) FenceCounterExists(ctx context.Context, key string) (bool, error) {
	return h.exists(ctx, key, "n")
}

// clientOpt returns a copy of h.opt for a new client. Its InitAddress is
// a copy too: rueidis.NewClient shuffles that slice in place (ShuffleInit),
// and cases open clients concurrently.
func (h *harness) clientOpt() rueidis.ClientOption {
	opt := h.opt
	opt.InitAddress = slices.Clone(h.opt.InitAddress)
	return opt
}

// OpenDriver returns a driver over the same prefix with a client of its
// own, as another process would have.
func (h *harness) OpenDriver(ctx context.Context) (driver.Driver[Capabilities], error) {
	c, err := rueidis.NewClient(h.clientOpt())
	if err != nil {
		return nil, err
	}
	d, err := New(c, WithKeyPrefix(h.prefix))
	if err != nil {
		c.Close()
		return nil, err
	}
	h.Closers.Add(func() { d.Close(); c.Close() })
	return d, nil
}

// OpenUnheardDriver returns a driver over the same prefix with a client of
// its own, logged in as a user that may run every command but SSUBSCRIBE
// (created on every node, deleted in Close), as a process behind a proxy
// without pub/sub would have.
func (h *harness) OpenUnheardDriver(ctx context.Context) (driver.Driver[Capabilities], error) {
	user := "syncguard-nosub-" + testPrefix("u")
	nodes := h.c.Nodes()
	for _, n := range nodes {
		if err := n.Do(ctx, n.B().Arbitrary("ACL", "SETUSER").Args(user, "on", "nopass", "~*", "&*", "+@all", "-ssubscribe").Build()).Error(); err != nil {
			return nil, err
		}
	}
	dropUser := func() {
		for _, n := range nodes {
			_ = n.Do(context.Background(), n.B().Arbitrary("ACL", "DELUSER").Args(user).Build()).Error()
		}
	}
	opt := h.clientOpt()
	opt.Username, opt.Password = user, "any"
	c, err := rueidis.NewClient(opt)
	if err != nil {
		dropUser()
		return nil, err
	}
	d, err := New(c, WithKeyPrefix(h.prefix))
	if err != nil {
		c.Close()
		dropUser()
		return nil, err
	}
	h.Closers.Add(func() { d.Close(); c.Close(); dropUser() })
	return d, nil
}

// DriverWithLatency returns a driver with a client of its own whose
// connections, to every node it learns of (a Cluster's, a Sentinel's
// primary), run through a loopback proxy adding d each way. The client
// pipelines every request, so that a cancelled one is abandoned at once.
// It returns nil, and the latency cases skip, only if the client cannot be
// set up.
func (h *harness) DriverWithLatency(d time.Duration) driver.Driver[Capabilities] {
	pool := delayproxy.NewPool(d)
	opt := h.clientOpt()
	opt.AlwaysPipelining = true
	opt.DialCtxFn = func(ctx context.Context, addr string, _ *net.Dialer, _ *tls.Config) (net.Conn, error) {
		return pool.DialContext(ctx, addr)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		pool.Close()
		return nil
	}
	drv, err := New(c, WithKeyPrefix(h.prefix))
	if err != nil {
		c.Close()
		pool.Close()
		return nil
	}
	h.Closers.Add(func() { drv.Close(); c.Close(); pool.Close() })
	return drv
}
