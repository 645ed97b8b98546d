package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/conformance"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/testkit"
)

// sentinelSetup is a primary, a replica and one sentinel (quorum 1), each a
// redis-server process this test starts on free loopback ports and kills
// when it ends.
type sentinelSetup struct {
	dir                        string
	primary, replica, sentinel int
	procs                      map[int]*exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startSentinelSetup(t *testing.T) *sentinelSetup {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		needBackend(t, "redis-server not installed: %v", err)
	}
	s := &sentinelSetup{dir: t.TempDir(), primary: freePort(t), replica: freePort(t), sentinel: freePort(t), procs: map[int]*exec.Cmd{}}
	t.Cleanup(func() {
		for _, p := range s.procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	})
	common := "bind 127.0.0.1\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\nprotected-mode no\n"
	s.start(t, s.primary, fmt.Sprintf("port %d\ndir %s\n%s", s.primary, s.dir, common), false)
	s.start(t, s.replica, fmt.Sprintf("port %d\ndir %s\nreplicaof 127.0.0.1 %d\n%s", s.replica, s.dir, s.primary, common), false)
	s.start(t, s.sentinel, fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor mymaster 127.0.0.1 %d 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 5000
sentinel parallel-syncs mymaster 1
`, s.sentinel, s.dir, s.primary), true)
	// Wait for the replica's link and the sentinel's view of it.
	testkit.WaitFor(t, 20*time.Second, 100*time.Millisecond, "replica link up", func() bool {
		out, err := redisCLI(s.replica, "info", "replication")
		return err == nil && strings.Contains(out, "master_link_status:up")
	})
	testkit.WaitFor(t, 20*time.Second, 100*time.Millisecond, "sentinel sees the replica", func() bool {
		out, err := redisCLI(s.sentinel, "sentinel", "replicas", "mymaster")
		return err == nil && strings.Contains(out, strconv.Itoa(s.replica))
	})
	return s
}

func (s *sentinelSetup) start(t *testing.T, port int, conf string, sentinel bool) {
	t.Helper()
	path := filepath.Join(s.dir, fmt.Sprintf("%d.conf", port))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{path}
	if sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server on %d: %v", port, err)
	}
	s.procs[port] = cmd
	testkit.WaitFor(t, 10*time.Second, 100*time.Millisecond, fmt.Sprintf("redis-server on %d", port), func() bool {
		_, err := redisCLI(port, "ping")
		return err == nil
	})
}

func (s *sentinelSetup) kill(t *testing.T, port int) {
	t.Helper()
	p := s.procs[port]
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	delete(s.procs, port)
}

func redisCLI(port int, args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(port)}, args...)...).Output()
	return string(out), err
}

// TestSentinel runs the conformance suite through a Sentinel-managed
// primary, then kills the primary: the sentinel promotes the replica, the
// rueidis client follows it, and every fence handed out afterwards is
// greater than every fence before.
func TestSentinel(t *testing.T) {
	t.Parallel()
	s := startSentinelSetup(t)
	viaSentinel := func(o *rueidis.ClientOption) {
		o.Sentinel = rueidis.SentinelOption{MasterSet: "mymaster"}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.sentinel)
	c := newClient(t, []string{addr}, viaSentinel)
	conformance.Run(t, func(ctx context.Context, t *testing.T) (conformance.Harness[Capabilities], error) {
		h := newHarness(t, c, "sentinel")
		h.opt = rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true}
		viaSentinel(&h.opt)
		return h, nil
	}, confOptions)
	if t.Failed() {
		return
	}

	d := newDriver(t, c)
	ctx := context.Background()
	before := map[string]driver.Fence{}
	for i := range 4 {
		k := fmt.Sprintf("sentinel:%d", i)
		for round := range 2 {
			r, err := d.Acquire(ctx, k, 2*time.Second)
			if err != nil || !r.Acquired {
				t.Fatalf("Acquire(%s) = %+v, %v", k, r, err)
			}
			before[k] = r.Fence
			if round == 1 && i%2 == 1 {
				break // odd keys stay held into the failover
			}
			if _, err := d.Release(ctx, "", r.LockID); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.kill(t, s.primary)
	killed := time.Now()
	for k, f := range before {
		deadline := time.Now().Add(45 * time.Second)
		for {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			r, err := d.Acquire(actx, k, time.Second)
			cancel()
			if err == nil && r.Acquired {
				if r.Fence <= f {
					t.Errorf("key %s: fence after the sentinel failover %v ≤ %v before", k, r.Fence, f)
				}
				t.Logf("key %s: fence before %v, after %v (%.1fs after the kill)", k, f, r.Fence, time.Since(killed).Seconds())
				break
			}
			if err != nil && driver.CodeOf(err) == 0 {
				t.Fatalf("unmapped error %T: %v", err, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s not acquirable 45s after the kill: %+v, %v", k, r, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
