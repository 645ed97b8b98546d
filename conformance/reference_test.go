package conformance

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// This file tests the suite itself: the cases that need optional harness
// interfaces (which the memory driver cannot offer from outside its
// package) run against refDriver, a deliberately simple lock store with
// every harness hook. Records and rate are delegated to a memory Driver.

type refLock struct {
	id       string
	exp, acq int64
	fence    syncguard.Fence
}

type refStore struct {
	mu     sync.Mutex
	locks  map[string]*refLock // by normalised key
	ids    map[string]string   // lock ID → key
	fences map[string]int64
	mem    *memory.Driver
}

// refDriver is a lock driver over a refStore; latency delays every call
// before and after the operation, like a slow network.
type refDriver struct {
	st      *refStore
	cleanup bool
	latency time.Duration
}

// refCaps is the capability type of refDriver.
type refCaps struct {
	driver.WithFencing
	driver.WithServerTime
}

func (refCaps) Name() string { return "reference" }

var _ driver.Driver[refCaps] = (*refDriver)(nil)

func (d *refDriver) Capabilities() refCaps { return refCaps{} }

func now() int64 { return time.Now().UnixMilli() }

// wire simulates one network leg.
func (d *refDriver) wire(ctx context.Context) error {
	if d.latency <= 0 {
		return nil
	}
	if err := sleepCtx(ctx, d.latency); err != nil {
		return driver.ContextError(err)
	}
	return nil
}

func (d *refDriver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	ms, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	if err := d.wire(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	res, err := d.acquire(k, ms)
	if err != nil || !res.Acquired {
		return res, err
	}
	if err := d.wire(ctx); err != nil { // reply lost: compensate
		_, _ = (&refDriver{st: d.st}).Release(context.Background(), "", res.LockID)
		return driver.AcquireResult{}, err
	}
	return res, nil
}

func (d *refDriver) acquire(k string, ttlMs int64) (driver.AcquireResult, error) {
	s := d.st
	s.mu.Lock()
	defer s.mu.Unlock()
	n := now()
	if l := s.locks[k]; l != nil && driver.IsLive(l.exp, n) {
		return driver.AcquireResult{Reason: driver.ReasonLocked}, nil
	}
	f, _, err := driver.CheckNewFence(s.fences[k] + 1)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	s.fences[k] = int64(f)
	if old := s.locks[k]; old != nil {
		delete(s.ids, old.id)
	}
	l := &refLock{id: driver.NewLockID(), exp: n + ttlMs, acq: n, fence: f}
	s.locks[k], s.ids[l.id] = l, k
	return driver.AcquireResult{Acquired: true, LockID: l.id, Fence: f, ExpiresAtMs: l.exp}, nil
}

// byID resolves a live lock; the caller holds s.mu.
func (s *refStore) byID(id string) (string, *refLock, string) {
	k, ok := s.ids[id]
	if !ok || s.locks[k] == nil || s.locks[k].id != id {
		return "", nil, driver.DetailNotFound
	}
	if l := s.locks[k]; driver.IsLive(l.exp, now()) {
		return k, l, ""
	}
	return "", nil, driver.DetailExpired
}

func (d *refDriver) Release(ctx context.Context, _, id string) (driver.ReleaseResult, error) {
	if err := driver.ValidateLockID(id); err != nil {
		return driver.ReleaseResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.ReleaseResult{}, err
	}
	s := d.st
	s.mu.Lock()
	defer s.mu.Unlock()
	k, l, detail := s.byID(id)
	if l == nil {
		return driver.ReleaseResult{Detail: detail}, nil
	}
	delete(s.locks, k)
	delete(s.ids, id)
	return driver.ReleaseResult{OK: true}, nil
}

func (d *refDriver) Extend(ctx context.Context, _, id string, ttl time.Duration) (driver.ExtendResult, error) {
	if err := driver.ValidateLockID(id); err != nil {
		return driver.ExtendResult{}, err
	}
	ms, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.ExtendResult{}, err
	}
	s := d.st
	s.mu.Lock()
	defer s.mu.Unlock()
	_, l, detail := s.byID(id)
	if l == nil {
		return driver.ExtendResult{Detail: detail}, nil
	}
	l.exp = now() + ms
	return driver.ExtendResult{OK: true, ExpiresAtMs: l.exp}, nil
}

func (d *refDriver) IsLocked(ctx context.Context, key string) (bool, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return false, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return false, err
	}
	s := d.st
	s.mu.Lock()
	l := s.locks[k]
	n := now()
	live := l != nil && driver.IsLive(l.exp, n)
	s.mu.Unlock()
	if l != nil && !live && d.cleanup && n-l.exp > driver.CleanupGuardMs {
		go func() { // fire and forget, re-checking the expiry
			s.mu.Lock()
			defer s.mu.Unlock()
			if cur := s.locks[k]; cur != nil && now()-cur.exp > driver.CleanupGuardMs {
				delete(s.ids, cur.id)
				delete(s.locks, k)
			}
		}()
	}
	return live, nil
}

func (s *refStore) info(k string, l *refLock) *driver.LockInfo {
	return &driver.LockInfo{Key: k, LockID: l.id, Fence: l.fence, ExpiresAtMs: l.exp, AcquiredAtMs: l.acq}
}

func (d *refDriver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return nil, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return nil, err
	}
	s := d.st
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.locks[k]; l != nil && driver.IsLive(l.exp, now()) {
		return s.info(k, l), nil
	}
	return nil, nil
}

func (d *refDriver) LookupByID(ctx context.Context, id string) (*driver.LockInfo, error) {
	if err := driver.ValidateLockID(id); err != nil {
		return nil, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return nil, err
	}
	s := d.st
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, l, _ := s.byID(id); l != nil {
		return s.info(k, l), nil
	}
	return nil, nil
}

func (d *refDriver) PutRecord(ctx context.Context, name string, f syncguard.Fence, v []byte, ttl time.Duration) (driver.PutResult, error) {
	return d.st.mem.PutRecord(ctx, name, f, v, ttl)
}

func (d *refDriver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	return d.st.mem.GetRecord(ctx, name)
}

func (d *refDriver) DeleteRecord(ctx context.Context, name string, f syncguard.Fence) (bool, error) {
	return d.st.mem.DeleteRecord(ctx, name, f)
}

func (d *refDriver) AllowN(ctx context.Context, key string, lim syncguard.RateLimit, n int) (syncguard.RateResult, error) {
	return d.st.mem.AllowN(ctx, key, lim, n)
}

func (d *refDriver) ResetRate(ctx context.Context, key string) error {
	return d.st.mem.ResetRate(ctx, key)
}

// refHarness implements every optional harness interface.
type refHarness struct{ st *refStore }

var (
	_ RawLockWriter            = (*refHarness)(nil)
	_ FenceSetter              = (*refHarness)(nil)
	_ StorageInspector         = (*refHarness)(nil)
	_ CleanupHarness[refCaps]  = (*refHarness)(nil)
	_ LatencyInjector[refCaps] = (*refHarness)(nil)
)

func (h *refHarness) Driver() driver.Driver[refCaps] { return &refDriver{st: h.st} }
func (h *refHarness) Close()                         {}
func (h *refHarness) DriverWithCleanup() driver.Driver[refCaps] {
	return &refDriver{st: h.st, cleanup: true}
}
func (h *refHarness) DriverWithLatency(d time.Duration) driver.Driver[refCaps] {
	return &refDriver{st: h.st, latency: d}
}

func (h *refHarness) WriteRawLock(_ context.Context, key, id string, f syncguard.Fence, off time.Duration) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	s := h.st
	s.mu.Lock()
	defer s.mu.Unlock()
	n := now()
	if old := s.locks[k]; old != nil {
		delete(s.ids, old.id)
	}
	s.locks[k] = &refLock{id: id, exp: n + off.Milliseconds(), acq: n - 1000, fence: f}
	s.ids[id] = k
	return nil
}

func (h *refHarness) SetFence(_ context.Context, key string, v int64) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	h.st.fences[k] = v
	return nil
}

func (h *refHarness) LockDataExists(_ context.Context, key string) (bool, error) {
	k, _ := driver.NormalizeKey(key)
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	return h.st.locks[k] != nil, nil
}

func (h *refHarness) FenceCounterExists(_ context.Context, key string) (bool, error) {
	k, _ := driver.NormalizeKey(key)
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	_, ok := h.st.fences[k]
	return ok, nil
}

// TestOptionalInterfaces runs the cases that depend on optional harness
// interfaces, plus a few basic ones, against refDriver.
func TestOptionalInterfaces(t *testing.T) {
	newHarness := func(context.Context, *testing.T) (Harness[refCaps], error) {
		return &refHarness{st: &refStore{
			locks: map[string]*refLock{}, ids: map[string]string{}, fences: map[string]int64{}, mem: memory.New(),
		}}, nil
	}
	want := []string{"case001_", "case009_", "case026_", "case041_fix_", "case045_", "case059_", "case094_", "case097_", "case152_"}
	var (
		mu  sync.Mutex
		ran []string
	)
	run(t, newHarness, Options{}, func(id string) bool {
		for _, p := range want {
			if strings.HasPrefix(id, p) {
				mu.Lock()
				ran = append(ran, id)
				mu.Unlock()
				return true
			}
		}
		return false
	})
	if len(ran) != len(want) {
		t.Errorf("ran %v; want one case for each of %v", ran, want)
	}
}
