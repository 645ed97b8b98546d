package redis

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// privateRedis starts a redis-server of its own on port (no persistence)
// and returns a function that SIGKILLs it. The server is killed when t ends.
func privateRedis(t *testing.T, port int) (addr string, kill func()) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		needBackend(t, "redis-server: %v", err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	kill = func() {
		_ = cmd.Process.Signal(os.Kill)
		<-done
	}
	t.Cleanup(kill)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr, kill
		}
		if i > 100 {
			t.Fatalf("redis-server on %s did not come up: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBoundWithoutDeadline is issue 16's case: a client built as
// docs/redis.md shows (rueidis retries read-only commands while the server
// is away), the server SIGKILLed, and calls whose context has no deadline.
// Each must return within the driver's call bound with ServiceUnavailable
// or NetworkTimeout; before the bound, GetRecord (OncePerKey's lookup)
// never returned while the server stayed down.
func TestBoundWithoutDeadline(t *testing.T) {
	t.Parallel()
	addr, kill := privateRedis(t, privateRedisPort())
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const bound = 400 * time.Millisecond
	d, err := New(c, WithCallTimeout(bound))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	g := syncguard.New(d)
	once, err := syncguard.NewOncePerKey[string](g)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.GetRecord(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	kill()
	calls := map[string]func() error{
		"GetRecord": func() error { _, err := d.GetRecord(ctx, "r"); return err },
		"Acquire":   func() error { _, err := d.Acquire(ctx, "k", time.Second); return err },
		"Release":   func() error { _, err := d.Release(ctx, "", driver.NewLockID()); return err },
		"OncePerKey.Do": func() error {
			_, err := once.Do(ctx, "k", func(context.Context) (string, error) { return "x", nil })
			return err
		},
		"Guard.TryAcquire": func() error { _, err := g.TryAcquire(ctx, "k"); return err },
	}
	for name, call := range calls {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			took := time.Since(start)
			code := driver.CodeOf(err)
			t.Logf("%s: %v after %v (%v)", name, code, took.Round(time.Millisecond), err)
			if code != driver.ServiceUnavailable && code != driver.NetworkTimeout {
				t.Errorf("%s: %v; want ServiceUnavailable or NetworkTimeout", name, err)
			}
			if took > bound+200*time.Millisecond {
				t.Errorf("%s took %v; bound %v", name, took, bound)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer after 10 s with the server down (hang)", name)
		}
	}
}
