// Package testkit holds the test helpers that the drivers' own (package
// internal) tests share: waiting for wake-up signals, polling for a
// condition, taking a lock, joining a hand-off queue. It imports no driver,
// so every driver's tests can use it.
package testkit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// WaitSignal fails t unless ch signals within d.
func WaitSignal(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: no signal within %v", what, d)
	}
}

// NoSignal fails t if ch signals within d.
func NoSignal(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: unexpected signal", what)
	case <-time.After(d):
	}
}

// WaitFor polls cond every interval until it holds, or fails t after
// within.
func WaitFor(t testing.TB, within, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(interval)
	}
}

// Acquirer is the Acquire method of a [driver.LockStore].
type Acquirer interface {
	Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error)
}

// MustAcquire takes key on l for a minute, or fails t.
func MustAcquire(t testing.TB, l Acquirer, key string) driver.AcquireResult {
	t.Helper()
	r, err := l.Acquire(context.Background(), key, time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(%q) = %+v, %v", key, r, err)
	}
	return r
}

// WatchRelease subscribes to the releases of key on w, or fails t. The
// subscription stops when t ends.
func WatchRelease(t testing.TB, w driver.ReleaseWatcher, key string) <-chan struct{} {
	t.Helper()
	ch, stop, err := w.WatchRelease(context.Background(), key)
	if err != nil {
		t.Fatalf("WatchRelease(%q): %v", key, err)
	}
	t.Cleanup(stop)
	return ch
}

// Queue makes a waiter join key's hand-off queue on w: subscribe, consume
// the initial signal, make the contended attempt. The subscription stops
// when t ends.
func Queue(t testing.TB, w driver.HandoffWatcher, key string) *driver.Handoff {
	t.Helper()
	ctx := context.Background()
	h, err := w.WatchHandoff(ctx, key)
	if err != nil {
		t.Fatalf("WatchHandoff: %v", err)
	}
	t.Cleanup(h.Stop)
	WaitSignal(t, h.C, time.Second, "initial signal")
	r, err := h.Acquire(ctx, time.Minute)
	if err != nil || r.Acquired {
		t.Fatalf("queued attempt = %+v, %v; want contended", r, err)
	}
	return h
}

// Closers collects the clean-up functions of a test harness that opens
// drivers and clients on demand. Close runs them in the reverse order of
// Add, as t.Cleanup does. It is safe for concurrent use; the zero value is
// ready.
type Closers struct {
	mu sync.Mutex
	fs []func()
}

// Add registers fs, to run in reverse order at Close.
func (c *Closers) Add(fs ...func()) {
	c.mu.Lock()
	c.fs = append(c.fs, fs...)
	c.mu.Unlock()
}

// Close runs the registered functions, last added first, and forgets them.
func (c *Closers) Close() {
	c.mu.Lock()
	fs := c.fs
	c.fs = nil
	c.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// DriverPair is what every driver's conformance harness holds: the driver
// under test (D), one like it with cleanup in IsLocked (DC), and the
// closers of what the harness opens on demand. A harness that embeds it
// has the Driver, DriverWithCleanup and Close methods of
// conformance.Harness and conformance.CleanupHarness.
type DriverPair[C driver.Capabilities, D interface {
	driver.Driver[C]
	Close()
}] struct {
	D, DC   D
	Closers Closers
}

// Driver returns D.
func (p *DriverPair[C, D]) Driver() driver.Driver[C] { return p.D }

// DriverWithCleanup returns DC.
func (p *DriverPair[C, D]) DriverWithCleanup() driver.Driver[C] { return p.DC }

// Close closes D and DC, then runs the closers.
func (p *DriverPair[C, D]) Close() {
	p.D.Close()
	p.DC.Close()
	p.Closers.Close()
}

// HandoffFIFO checks the hand-off of key, held by holder, to the waiters
// hs queued on l in this order: each release wakes only the head of the
// queue; the key stays locked meanwhile (a plain acquisition is
// contended); the head's next attempt gets the grant with no further wait,
// with a fence above the previous one, and it is the lock that LookupByID
// finds (same fence, expiry and key). It returns the last grant, still
// held.
func HandoffFIFO(t testing.TB, l driver.LockStore, key string, holder driver.AcquireResult, hs []*driver.Handoff) driver.AcquireResult {
	t.Helper()
	ctx := context.Background()
	last := holder
	for i, h := range hs {
		if rr, err := l.Release(ctx, "", last.LockID); err != nil || !rr.OK {
			t.Fatalf("Release = %+v, %v", rr, err)
		}
		WaitSignal(t, h.C, 2*time.Second, "head of the queue")
		for j := i + 1; j < len(hs); j++ {
			NoSignal(t, hs[j].C, 50*time.Millisecond, "waiter behind the head")
		}
		if locked, err := l.IsLocked(ctx, key); err != nil || !locked {
			t.Fatalf("IsLocked after the grant = %v, %v; want true", locked, err)
		}
		if r, err := l.Acquire(ctx, key, time.Minute); err != nil || r.Acquired {
			t.Fatalf("plain Acquire during the grant = %+v, %v; want contended", r, err)
		}
		r, err := h.Acquire(ctx, time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("waiter %d: Acquire = %+v, %v; want the grant", i, r, err)
		}
		if r.Fence <= last.Fence {
			t.Fatalf("waiter %d: fence %v; want > %v", i, r.Fence, last.Fence)
		}
		info, err := l.LookupByID(ctx, r.LockID)
		if err != nil || info == nil {
			t.Fatalf("LookupByID(grant) = %+v, %v", info, err)
		}
		if info.Fence != r.Fence || info.ExpiresAtMs != r.ExpiresAtMs || info.Key != key {
			t.Fatalf("granted lock (fence %v, expiry %d, key %q) differs from the grant (%v, %d, %q)",
				info.Fence, info.ExpiresAtMs, info.Key, r.Fence, r.ExpiresAtMs, key)
		}
		last = r
	}
	return last
}
