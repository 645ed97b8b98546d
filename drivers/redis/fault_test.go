package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// proxied returns a driver whose connection to the single node runs through
// an in-process fault proxy, and a direct driver over the same prefix.
func proxied(t *testing.T, tweak ...func(*rueidis.ClientOption)) (fp *faultProxy, viaProxy, direct *Driver) {
	t.Helper()
	fp = startProxy(t, singleAddr())
	pc := newClient(t, []string{fp.addr()}, tweak...)
	direct = newDriver(t, singleClient(t))
	viaProxy, err := New(pc, WithKeyPrefix(direct.KeyPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaProxy.Close)
	return fp, viaProxy, direct
}

// TestFaultLatencyBeyondDeadline: with 500 ms of latency each way, every
// operation whose context has a 200 ms deadline fails with NetworkTimeout
// within the deadline + 100 ms.
func TestFaultLatencyBeyondDeadline(t *testing.T) {
	// Not parallel: it bounds wall time (deadline + 100 ms), so it runs
	// before the package's parallel tests rather than among them.
	fp, d, _ := proxied(t)
	fp.latency(t, 500*time.Millisecond)
	const deadline = 200 * time.Millisecond
	ops := map[string]func(ctx context.Context) error{
		"Acquire": func(ctx context.Context) error { _, err := d.Acquire(ctx, "slow", time.Second); return err },
		"Release": func(ctx context.Context) error { _, err := d.Release(ctx, "", driver.NewLockID()); return err },
		"Extend": func(ctx context.Context) error {
			_, err := d.Extend(ctx, "", driver.NewLockID(), time.Second)
			return err
		},
		"IsLocked": func(ctx context.Context) error {
			_, err := d.IsLocked(ctx, "slow")
			return err
		},
		"LookupByKey": func(ctx context.Context) error { _, err := d.LookupByKey(ctx, "slow"); return err },
		"AllowN": func(ctx context.Context) error {
			_, err := d.AllowN(ctx, "slow", driver.RateLimit{Limit: 10, Period: time.Second, Burst: 10}, 1)
			return err
		},
		"GetRecord": func(ctx context.Context) error { _, err := d.GetRecord(ctx, "slow"); return err },
	}
	for name, op := range ops {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		err := op(ctx)
		took := time.Since(start)
		cancel()
		if driver.CodeOf(err) != driver.NetworkTimeout {
			t.Errorf("%s: err = %v; want NetworkTimeout", name, err)
		}
		if took > deadline+100*time.Millisecond {
			t.Errorf("%s returned after %v; want within %v", name, took, deadline+100*time.Millisecond)
		}
	}
}

// TestFaultCutMidAcquire: the acquire reaches Redis but the connection is
// reset before the reply arrives. The caller gets a mapped error; once the
// network recovers, no orphaned lock outlives its TTL (+ tolerance), and
// the key can be acquired again.
func TestFaultCutMidAcquire(t *testing.T) {
	t.Parallel()
	fp, d, direct := proxied(t)
	ctx := context.Background()
	const ttl = 1500 * time.Millisecond
	orphans := 0
	for i, key := range []string{"cut:0", "cut:1"} {
		fp.reset(t) // resets connections as soon as a request passes
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := d.Acquire(actx, key, ttl)
		cancel()
		if err == nil {
			t.Fatalf("Acquire through a resetting proxy = %+v, nil; want an error", r)
		}
		code := driver.CodeOf(err)
		if code != driver.ServiceUnavailable && code != driver.NetworkTimeout {
			t.Errorf("Acquire through a resetting proxy: %v (code %v); want ServiceUnavailable or NetworkTimeout", err, code)
		}
		if locked, _ := direct.IsLocked(ctx, key); locked {
			orphans++ // executed on the server, reply lost
		}
		fp.heal()
		// Whatever the server did, the key is free by ttl + tolerance.
		deadline := start.Add(ttl + driver.Tolerance + 200*time.Millisecond)
		for {
			locked, err := direct.IsLocked(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if !locked {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s still locked %v after the cut; want free by ttl+tolerance", key, time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
		// And usable through the recovered connection.
		r, err = d.Acquire(ctx, key, ttl)
		if err != nil || !r.Acquired {
			t.Fatalf("round %d: Acquire after recovery = %+v, %v", i, r, err)
		}
		if _, err := d.Release(ctx, "", r.LockID); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d of 2 cut acquisitions had left a lock on the server right after the cut; every one was gone within ttl+tolerance", orphans)
}

// TestFaultPartition: requests are swallowed (the TCP connection stays
// up). Operations return NetworkTimeout at their deadline; after healing,
// the driver works again.
func TestFaultPartition(t *testing.T) {
	// Not parallel: it bounds wall time (deadline + 100 ms), so it runs
	// before the package's parallel tests rather than among them.
	fp, d, _ := proxied(t)
	ctx := context.Background()
	fp.cut(t)
	for range 3 {
		c, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
		start := time.Now()
		_, err := d.Acquire(c, "partition", time.Second)
		cancel()
		if driver.CodeOf(err) != driver.NetworkTimeout {
			t.Errorf("Acquire during partition: %v; want NetworkTimeout", err)
		}
		if took := time.Since(start); took > 250*time.Millisecond {
			t.Errorf("Acquire during partition took %v", took)
		}
	}
	fp.heal()
	fp.dropConns() // end the connections the partition held; the client redials
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		r, err := d.Acquire(c, "partition:after", time.Second)
		cancel()
		if err == nil && r.Acquired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("driver did not recover: %+v, %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServerDown: a client whose server is gone gets ServiceUnavailable,
// not a hang or a panic.
func TestServerDown(t *testing.T) {
	t.Parallel()
	fp := startProxy(t, singleAddr())
	pc := newClient(t, []string{fp.addr()}, func(o *rueidis.ClientOption) { o.DisableRetry = true })
	d, err := New(pc, WithKeyPrefix(testPrefix("down")))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fp.stop() // connections closed, listener gone: refused on redial
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = d.Acquire(ctx, "k", time.Second)
	if code := driver.CodeOf(err); code != driver.ServiceUnavailable {
		t.Errorf("Acquire with the server down: %v (code %v); want ServiceUnavailable", err, code)
	}
	if took := time.Since(start); took > 2100*time.Millisecond {
		t.Errorf("took %v", took)
	}
}

// TestFaultCancelInFlight: requests are swallowed; cancelling a context
// without a deadline ends the call at once, both on connections already
// in use and on a connection that rueidis dials inside the call (whose
// handshake rueidis itself bounds only by a deadline or its dial timeout).
func TestFaultCancelInFlight(t *testing.T) {
	// Not parallel: it bounds wall time.
	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			fp, d, _ := proxied(t)
			if warm {
				// rueidis dials its connections lazily, on first use: use
				// them all.
				for i := range 64 {
					if _, err := d.IsLocked(context.Background(), "warm-up:"+strconv.Itoa(i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			fp.cut(t)
			defer fp.heal()
			for i := range 2 {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				start := time.Now()
				_, err := d.Acquire(ctx, "cancel", time.Second)
				took := time.Since(start)
				cancel()
				if err == nil {
					t.Fatalf("call %d: Acquire succeeded during the partition", i)
				}
				if took > 250*time.Millisecond {
					t.Errorf("call %d: Acquire returned %v after the cancellation at 100ms; want at once (err %v)", i, took, err)
				}
			}
		})
	}
}

// TestFaultHandshakeBoundedByDeadline: a connection dialled inside a call
// (the first use, here) to a server that never answers: the handshake is
// bounded by the call's deadline.
func TestFaultHandshakeBoundedByDeadline(t *testing.T) {
	// Not parallel: it bounds wall time.
	fp, d, _ := proxied(t)
	fp.cut(t)
	defer fp.heal()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := d.Acquire(ctx, "handshake", time.Second)
	if code := driver.CodeOf(err); code != driver.NetworkTimeout {
		t.Errorf("Acquire = %v (code %v); want NetworkTimeout", err, code)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("Acquire returned after %v; want by its 150ms deadline", took)
	}
}
