package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// harnessTimeout bounds the Factory.
const harnessTimeout = 2 * time.Minute

// clockSkew is the allowance for comparisons between the test's clock and
// the driver's time authority (catalogue: cross-clock comparisons allow
// skew).
const clockSkew = time.Second

// Run runs every case of the conformance suite against the driver of the
// harness that newHarness builds, as subtests named
// <driver name>/<case ID> (for example "memory/case009_held_key_is_contended").
//
// Run builds one harness and closes it (t.Cleanup) when the test ends. It
// returns only when every case has finished, so the caller may close shared
// resources right after it. Cases run concurrently on separate keys; they
// are started on goroutines rather than with t.Parallel, because the
// -parallel limit (GOMAXPROCS by default) would otherwise serialise their
// sleeps. Wall time is about 2×Timing.Wait. A few cases that measure
// process-wide state (goroutine counts) run first, alone; do not run Run
// concurrently with other tests of the same binary that start and stop
// many goroutines.
//
// Use -run to select cases, e.g. -run 'TestConformance/memory/case0[0-9]'.
func Run[C driver.Capabilities](t *testing.T, newHarness Factory[C], opts Options) {
	t.Helper()
	run(t, newHarness, opts, nil)
}

// RunDriver is [Run] for a driver that needs no harness hooks: newDriver
// returns the driver under test over a store of its own. The cases that
// need an optional harness interface skip.
//
//	func TestConformance(t *testing.T) {
//		conformance.RunDriver(t, func(*testing.T) driver.Driver[mystore.Capabilities] { return mystore.New() }, conformance.Options{})
//	}
func RunDriver[C driver.Capabilities](t *testing.T, newDriver func(t *testing.T) driver.Driver[C], opts Options) {
	t.Helper()
	Run(t, func(_ context.Context, t *testing.T) (Harness[C], error) {
		return driverHarness[C]{newDriver(t)}, nil
	}, opts)
}

// driverHarness is the Harness of RunDriver.
type driverHarness[C driver.Capabilities] struct{ d driver.Driver[C] }

func (h driverHarness[C]) Driver() driver.Driver[C] { return h.d }
func (h driverHarness[C]) Close()                   {}

// run is Run restricted to the cases whose ID keep accepts (all if nil).
func run[C driver.Capabilities](t *testing.T, newHarness Factory[C], opts Options, keep func(id string) bool) {
	t.Helper()
	if newHarness == nil {
		t.Fatal("conformance.Run: nil Factory")
	}
	opts = opts.withDefaults()

	hctx, cancel := context.WithTimeout(t.Context(), harnessTimeout)
	h, err := newHarness(hctx, t)
	cancel()
	if err != nil {
		t.Fatalf("conformance.Run: building the harness: %v", err)
	}
	if h == nil {
		t.Fatal("conformance.Run: the Factory returned a nil Harness")
	}
	t.Cleanup(h.Close)
	d := h.Driver()
	if d == nil {
		t.Fatal("conformance.Run: Harness.Driver returned nil")
	}
	backend, _ := any(d).(driver.Backend)
	rates, _ := any(d).(driver.RateStore)
	permits, _ := any(d).(driver.PermitStore)
	info := driver.Describe(d.Capabilities())
	indexed := hasIndex(t, d)
	if !indexed {
		// A driver without a lock-ID index releases and extends by key:
		// the suite's driver-level calls go through keyedDriver, which
		// remembers each lock's key.
		d = &keyedDriver[C]{Driver: d}
	}
	name := info.Name
	if name == "" {
		name = "driver"
	}
	token := newToken()
	var cases []testCase[C]
	for _, tcase := range registry[C]() {
		if keep == nil || keep(tcase.id) {
			cases = append(cases, tcase)
		}
	}

	t.Run(name, func(t *testing.T) {
		start := func(tcase testCase[C]) {
			t.Run(tcase.id, func(t *testing.T) {
				if why := needsOf(tcase.id).missing(info, backend != nil, rates != nil, permits != nil, indexed); why != "" {
					t.Skip("the driver " + why)
				}
				ctx, cancel := context.WithTimeout(t.Context(), caseTimeout(opts))
				defer cancel()
				c := &tc[C]{
					T:      t,
					ctx:    ctx,
					d:      d,
					b:      backend,
					r:      rates,
					p:      permits,
					info:   info,
					h:      h,
					tm:     opts.Timing,
					opts:   opts,
					prefix: "sgc:" + token + ":" + tcase.id + ":",
				}
				tcase.fn(c)
			})
		}
		for _, tcase := range cases {
			if tcase.alone {
				start(tcase)
			}
		}
		var wg sync.WaitGroup
		var sem chan struct{}
		if opts.MaxConcurrentCases > 0 {
			sem = make(chan struct{}, opts.MaxConcurrentCases)
		}
		for _, tcase := range cases {
			if !tcase.alone {
				wg.Go(func() {
					if sem != nil {
						sem <- struct{}{}
						defer func() { <-sem }()
					}
					start(tcase)
				})
			}
		}
		wg.Wait()
	})
}

// caseTimeout bounds one case: every blocking call of the case runs under a
// context with this deadline.
func caseTimeout(o Options) time.Duration {
	return 30*time.Second + 6*o.Timing.Wait + 2*o.ExclusionDuration
}

// newToken returns the per-run random token that prefixes every key.
func newToken() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tc is the state of one running case. Its helper methods call Fatal and
// must only be used on the case's own goroutine; goroutines started by a
// case call the driver directly and report with Errorf.
type tc[C driver.Capabilities] struct {
	*testing.T
	ctx    context.Context
	d      driver.Driver[C]
	b      driver.Backend     // d as a whole Backend (records), nil if it is none
	r      driver.RateStore   // d's rate store, nil if it has none
	p      driver.PermitStore // d's permit store, nil if it has none
	info   driver.Info        // what d's capability type declares
	h      Harness[C]
	tm     Timing
	opts   Options
	prefix string
}

// key returns a key unique to this case and run.
func (c *tc[C]) key(name string) string { return c.prefix + name }

// floorNow returns the fence floor of the local clock shifted by off: the
// bounds a fresh key's fence must lie in are floorNow(−Tolerance) before
// the acquisition and floorNow(+Tolerance) after it (the backend's clock,
// server or client, is trusted to agree within the tolerance).
func (c *tc[C]) floorNow(off time.Duration) syncguard.Fence {
	return driver.FenceFloor(time.Now().Add(off).UnixMicro())
}

// wantFloored checks that f, the fence of a key whose counter had no
// higher value, lies within [lo, floorNow(+Tolerance)].
func (c *tc[C]) wantFloored(what string, f, lo syncguard.Fence) {
	c.Helper()
	if hi := c.floorNow(driver.Tolerance); f < lo || f > hi {
		c.Errorf("%s = %v; want the time floor, within [%v, %v]", what, f, lo, hi)
	}
}

// guard returns a fresh Guard over the driver under test.
func (c *tc[C]) guard(opts ...syncguard.Option) *syncguard.Guard[C] {
	return syncguard.New(c.d, opts...)
}

// sleep waits d, or fails the case if its context ends first.
func (c *tc[C]) sleep(d time.Duration) {
	c.Helper()
	if err := sleepCtx(c.ctx, d); err != nil {
		c.Fatalf("sleep %v: %v", d, err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// acquire makes one acquisition that must not fail with an error.
func (c *tc[C]) acquire(key string, ttl time.Duration) driver.AcquireResult {
	c.Helper()
	r, err := c.d.Acquire(c.ctx, key, ttl)
	if err != nil {
		c.Fatalf("Acquire(%q, %v): unexpected error: %v", key, ttl, err)
	}
	return r
}

// mustAcquire acquires key, failing the case unless it succeeds with a
// well-formed result.
func (c *tc[C]) mustAcquire(key string, ttl time.Duration) driver.AcquireResult {
	c.Helper()
	r := c.acquire(key, ttl)
	if !r.Acquired {
		c.Fatalf("Acquire(%q, %v) = %+v; want acquired", key, ttl, r)
	}
	if !driver.ValidLockID(r.LockID) {
		c.Fatalf("Acquire(%q): LockID %q does not match %s", key, r.LockID, lockIDPattern)
	}
	if r.Fence == 0 && c.info.Fencing {
		c.Fatalf("Acquire(%q): Fence is 0", key)
	}
	return r
}

// wantContended asserts that an acquisition of key is contended.
func (c *tc[C]) wantContended(key string, ttl time.Duration) {
	c.Helper()
	r := c.acquire(key, ttl)
	if r.Acquired || r.Reason != driver.ReasonLocked {
		c.Fatalf("Acquire(%q) of a held key = %+v; want Acquired false, Reason %q", key, r, driver.ReasonLocked)
	}
}

func (c *tc[C]) release(lockID string) driver.ReleaseResult {
	c.Helper()
	r, err := c.d.Release(c.ctx, "", lockID)
	if err != nil {
		c.Fatalf("Release(%q): unexpected error: %v", lockID, err)
	}
	return r
}

// wantRelease asserts the OK of a release.
func (c *tc[C]) wantRelease(lockID string, ok bool) {
	c.Helper()
	if r := c.release(lockID); r.OK != ok {
		c.Fatalf("Release(%q) = %+v; want OK %v", lockID, r, ok)
	}
}

func (c *tc[C]) extend(lockID string, ttl time.Duration) driver.ExtendResult {
	c.Helper()
	r, err := c.d.Extend(c.ctx, "", lockID, ttl)
	if err != nil {
		c.Fatalf("Extend(%q, %v): unexpected error: %v", lockID, ttl, err)
	}
	return r
}

// wantExtend asserts the OK of an extension and returns its result.
func (c *tc[C]) wantExtend(lockID string, ttl time.Duration, ok bool) driver.ExtendResult {
	c.Helper()
	r := c.extend(lockID, ttl)
	if r.OK != ok {
		c.Fatalf("Extend(%q, %v) = %+v; want OK %v", lockID, ttl, r, ok)
	}
	return r
}

func (c *tc[C]) isLocked(key string) bool {
	c.Helper()
	v, err := c.d.IsLocked(c.ctx, key)
	if err != nil {
		c.Fatalf("IsLocked(%q): unexpected error: %v", key, err)
	}
	return v
}

func (c *tc[C]) wantLocked(key string, want bool) {
	c.Helper()
	if got := c.isLocked(key); got != want {
		c.Fatalf("IsLocked(%q) = %v; want %v", key, got, want)
	}
}

// lookupKey is the Guard's (hashed) lookup of key.
func (c *tc[C]) lookupKey(key string) *syncguard.LockInfo {
	c.Helper()
	info, err := c.guard().Lookup(c.ctx, key)
	if err != nil {
		c.Fatalf("LookupByKey(%q): unexpected error: %v", key, err)
	}
	return info
}

// lookupID is the Guard's (hashed) lookup of lockID.
func (c *tc[C]) lookupID(lockID string) *syncguard.LockInfo {
	c.Helper()
	info, err := c.guard().LookupID(c.ctx, lockID)
	if err != nil {
		c.Fatalf("LookupByID(%q): unexpected error: %v", lockID, err)
	}
	return info
}

// wantCode reports (without stopping the case) unless err is a *LockError
// with the given code whose message contains substr (if substr ≠ "").
func (c *tc[C]) wantCode(what string, err error, code driver.Code, substr string) {
	c.Helper()
	if msg := codeMismatch(err, code, substr); msg != "" {
		c.Errorf("%s: %s", what, msg)
	}
}

// codeMismatch describes how err differs from the expectation, or returns "".
func codeMismatch(err error, code driver.Code, substr string) string {
	if err == nil {
		return fmt.Sprintf("no error; want %v", code)
	}
	var le *syncguard.LockError
	if !errors.As(err, &le) {
		return fmt.Sprintf("error %v (%T) is not a *syncguard.LockError; want %v", err, err, code)
	}
	if le.Code != code {
		return fmt.Sprintf("error %q has code %v; want %v", err, le.Code, code)
	}
	if substr != "" && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(substr)) {
		return fmt.Sprintf("error %q does not mention %q", err, substr)
	}
	return ""
}

// skipUnsupported skips the case when err matches errors.ErrUnsupported
// (a harness method that is not available for this driver).
func (c *tc[C]) skipUnsupported(iface string, err error) {
	c.Helper()
	if errors.Is(err, errors.ErrUnsupported) {
		c.Skipf("harness does not support conformance.%s: %v", iface, err)
	}
}

// harnessAs returns the harness as optional interface I or skips the case,
// naming the interface.
func harnessAs[I any, C driver.Capabilities](c *tc[C], iface string) I {
	c.Helper()
	v, ok := any(c.h).(I)
	if !ok {
		c.Skipf("harness does not implement conformance.%s", iface)
	}
	return v
}

// nowMs is the test process clock in Unix milliseconds.
func nowMs() int64 { return time.Now().UnixMilli() }

var (
	lockIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	fencePattern  = regexp.MustCompile(`^\d{15}$`)
	hashPattern   = regexp.MustCompile(`^[0-9a-f]{24}$`)
)

// gather runs fn(i) for i in [0, n) concurrently and waits for all.
func gather(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}

// barrier lets n goroutines wait until all have arrived, or ctx ends.
type barrier struct {
	mu    sync.Mutex
	n     int
	ready chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, ready: make(chan struct{})} }

// arrive counts the caller in and waits for the others; it reports false if
// ctx ended first.
func (b *barrier) arrive(ctx context.Context) bool {
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.ready)
	}
	b.mu.Unlock()
	select {
	case <-b.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// foreignID returns a well-formed lock ID that no driver minted.
func foreignID(s string) string {
	if !driver.ValidLockID(s) {
		panic("conformance: bad foreign ID " + s)
	}
	return s
}

// asHandoff returns d's HandoffWatcher, if it has one.
func asHandoff(d any) (driver.HandoffWatcher, bool) {
	w, ok := d.(driver.HandoffWatcher)
	return w, ok
}

// asWatcher returns d's ReleaseWatcher, if it has one.
func asWatcher(d any) (driver.ReleaseWatcher, bool) {
	w, ok := d.(driver.ReleaseWatcher)
	return w, ok
}

// leaseFence returns the fence of the live lock l holds, read from the
// driver (0 when the lock is gone or the driver has no fencing): the suite
// runs drivers of any capability type, so it cannot use syncguard.FenceOf.
func (c *tc[C]) leaseFence(l *syncguard.Lease[C]) syncguard.Fence {
	info, err := c.d.LookupByKey(context.WithoutCancel(c.ctx), l.Key())
	if err != nil || info == nil || info.LockID != l.LockID() {
		return 0
	}
	return info.Fence
}
