package redis

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/churn"
	"github.com/syncguard/syncguard/internal/testkit"
)

// startPrivate starts a redis-server without persistence on a free
// loopback port and returns its port; it is killed when t ends.
func startPrivate(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		needBackend(t, "redis-server not installed: %v", err)
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, fmt.Sprintf("redis-server on %d", port), func() bool {
		_, err := redisCLI(port, "ping")
		return err == nil
	})
	return cmd
}

// TestFenceAcrossRestartWithoutPersistence is issue 20's measurement: five
// acquisitions of a key, SHUTDOWN NOSAVE, a restart that has lost every
// counter, and the next fences are still greater (they were 1 and 2).
func TestFenceAcrossRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	cmd := startPrivate(t, port)
	c := newClient(t, []string{"127.0.0.1:" + strconv.Itoa(port)}, func(o *rueidis.ClientOption) { o.DisableRetry = true })
	d := newDriver(t, c)
	ctx := context.Background()
	cycle := func() driver.Fence {
		t.Helper()
		var r driver.AcquireResult
		testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "an acquisition", func() bool {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var err error
			r, err = d.Acquire(actx, "restart", time.Minute)
			return err == nil && r.Acquired
		})
		// Right after the restart a call can still meet a connection
		// that the client has not yet found dead (EOF; retries are off):
		// retry the release like the acquisition.
		testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, "a release", func() bool {
			_, err := d.Release(ctx, "", r.LockID)
			return err == nil
		})
		return r.Fence
	}
	var before []driver.Fence
	for range 5 {
		before = append(before, cycle())
	}
	_, _ = redisCLI(port, "shutdown", "nosave")
	_ = cmd.Wait()
	startPrivate(t, port)
	if out, _ := redisCLI(port, "dbsize"); strings.TrimSpace(out) != "0" {
		t.Fatalf("restarted server holds %s keys; want an empty one", out)
	}
	after := []driver.Fence{cycle(), cycle()}
	t.Logf("fences before the restart %v, after %v", before, after)
	last := before[len(before)-1]
	for i, f := range after {
		if f <= last {
			t.Errorf("fence %d after the restart = %v; want > %v (the last before it)", i, f, last)
		}
		last = f
	}
}

// TestStorageFollowsLiveLocks: 20,000 distinct keys locked and released
// leave fence counters only until the floor has passed them by
// FenceMarginMs; then the key count is back to the baseline.
func TestStorageFollowsLiveLocks(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	startPrivate(t, port)
	c := newClient(t, []string{"127.0.0.1:" + strconv.Itoa(port)})
	d := newDriver(t, c)
	ctx := context.Background()
	info := func() (keys int64, mem string) {
		t.Helper()
		keys, err := c.Do(ctx, c.B().Dbsize().Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.Do(ctx, c.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(out, "\r\n") {
			if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
				mem = v
			}
		}
		return keys, mem
	}
	baseKeys, baseMem := info()
	const n = 20_000
	took, err := churn.Run(ctx, d, "payment:", n, 16)
	if err != nil {
		t.Fatal(err)
	}
	rightKeys, rightMem := info()
	// Counters are kept for the margin after their key's last acquisition
	// (the first keys' may be gone already on a slow machine): 100 keys
	// locked now keep theirs.
	var fresh []string
	for i := range 100 {
		k := "fresh:" + strconv.Itoa(i)
		r, err := d.Acquire(ctx, k, time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire = %+v, %v", r, err)
		}
		if _, err := d.Release(ctx, "", r.LockID); err != nil {
			t.Fatal(err)
		}
		kn, _ := d.names(k)
		fresh = append(fresh, kn.lock())
	}
	freshDone := time.Now()
	if kept, err := c.Do(ctx, c.B().Exists().Key(fresh...).Build()).AsInt64(); err != nil || kept != 100 {
		t.Errorf("fresh counters kept within the margin = %d, %v; want 100", kept, err)
	}
	time.Sleep(time.Until(freshDone.Add(time.Duration(driver.FenceMarginMs)*time.Millisecond + 500*time.Millisecond)))
	testkit.WaitFor(t, 5*time.Second, 100*time.Millisecond, "expired fence counters", func() bool { k, _ := info(); return k == baseKeys })
	afterKeys, afterMem := info()
	t.Logf("%d keys locked and released in %v: keys %d → %d → %d, used_memory %s → %s → %s",
		n, took.Round(time.Millisecond), baseKeys, rightKeys, afterKeys, baseMem, rightMem, afterMem)
}
