package election_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/election"
)

// The child process of TestLeaderKilled reads these.
const (
	childEnv    = "SYNCGUARD_ELECTION_CHILD" // "redis" or "postgres"
	childKeyEnv = "SYNCGUARD_ELECTION_KEY"
	childResign = "SYNCGUARD_ELECTION_RESIGN" // "1": resign on SIGTERM, then exit
	leaderTTL   = 2 * time.Second
)

func redisAddr() string {
	if a := os.Getenv("SYNCGUARD_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func postgresURL() string {
	if v := os.Getenv("SYNCGUARD_POSTGRES_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// openGuard builds a Guard over backend the way the drivers' docs show;
// close releases the clients.
func openGuard(ctx context.Context, backend string) (g *syncguard.Guard[syncguard.Fenced], closeAll func(), err error) {
	switch backend {
	case "redis":
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr()}, DisableCache: true})
		if err != nil {
			return nil, nil, err
		}
		d, err := redis.New(c, redis.WithKeyPrefix("sg-election-test"))
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return syncguard.NewFenced(d), func() { d.Close(); c.Close() }, nil
	case "postgres":
		pool, err := pgxpool.New(ctx, postgresURL())
		if err != nil {
			return nil, nil, err
		}
		if err := postgres.Setup(ctx, pool); err != nil {
			pool.Close()
			return nil, nil, err
		}
		d, err := postgres.New(pool)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return syncguard.NewFenced(d), func() { d.Close(); pool.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q", backend)
}

// runChild campaigns, reports its term on stdout and leads until killed.
func runChild() {
	ctx := context.Background()
	g, _, err := openGuard(ctx, os.Getenv(childEnv))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	e, err := election.New(g, os.Getenv(childKeyEnv))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	l, err := e.Campaign(ctx, []byte(fmt.Sprint("pid ", os.Getpid())), syncguard.TTL(leaderTTL))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("elected", syncguard.FenceOf(l))
	if os.Getenv(childResign) != "1" {
		select {}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	if err := e.Resign(ctx, l); err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// TestLeaderKilled: the leader's process is SIGKILLed (no release, no
// goodbye); a candidate in this process is elected about TTL + tolerance
// later, with a greater term.
func TestLeaderKilled(t *testing.T) {
	for _, backend := range []string{"redis", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			e, cmd, oldTerm := startLeader(t, ctx, backend, false)
			killed := time.Now()
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			l, err := e.Campaign(ctx, []byte("successor"), syncguard.TTL(leaderTTL), syncguard.RetryDelay(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			took := time.Since(killed)
			t.Logf("%s: new leader %v after the old one (term %v) was SIGKILLed: %v (TTL %v + tolerance %v)",
				backend, syncguard.FenceOf(l), oldTerm, took.Round(time.Millisecond), leaderTTL, driver.Tolerance)
			if syncguard.FenceOf(l) <= oldTerm {
				t.Errorf("new term %v; want > %v", syncguard.FenceOf(l), oldTerm)
			}
			// The child was elected before it printed, so its lease ends
			// at most TTL + tolerance after the kill; waiting adds one
			// backoff step (capped) and a round trip.
			if limit := leaderTTL + driver.Tolerance + 2*time.Second; took > limit {
				t.Errorf("new leader after %v; want within %v", took, limit)
			}
		})
	}
}

// TestLeaderResigns: a leader process that resigns on SIGTERM (graceful
// shutdown) hands over at once: a candidate already waiting in this
// process, with a retry delay far above the TTL, is woken by the release
// and elected within a fraction of the TTL.
func TestLeaderResigns(t *testing.T) {
	for _, backend := range []string{"redis", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			e, cmd, oldTerm := startLeader(t, ctx, backend, true)
			type result struct {
				l   *syncguard.Lease[syncguard.Fenced]
				err error
				at  time.Time
			}
			got := make(chan result, 1)
			go func() {
				l, err := e.Campaign(ctx, []byte("successor"), syncguard.TTL(leaderTTL),
					syncguard.RetryDelay(30*time.Second), syncguard.Backoff(syncguard.BackoffFixed), syncguard.Timeout(time.Minute))
				got <- result{l, err, time.Now()}
			}()
			time.Sleep(300 * time.Millisecond) // the candidate is most likely waiting; if not, it finds the key free
			stopped := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("child: %v", err)
			}
			r := <-got
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.l.Close()
			took := r.at.Sub(stopped)
			t.Logf("%s: new leader %v after the old one (term %v) resigned on SIGTERM: %v (TTL %v)",
				backend, syncguard.FenceOf(r.l), oldTerm, took.Round(time.Millisecond), leaderTTL)
			if syncguard.FenceOf(r.l) <= oldTerm {
				t.Errorf("new term %v; want > %v", syncguard.FenceOf(r.l), oldTerm)
			}
			if took > leaderTTL/2 {
				t.Errorf("new leader after %v; want well within the TTL %v (woken by the release)", took, leaderTTL)
			}
		})
	}
}

// startLeader starts a child process that campaigns for a fresh key over
// backend (and, with resign, resigns on SIGTERM) and returns the election
// as this process sees it, the child and the child's term.
func startLeader(t *testing.T, ctx context.Context, backend string, resign bool) (*election.Election[syncguard.Fenced], *exec.Cmd, syncguard.Fence) {
	t.Helper()
	g, closeAll, err := openGuard(ctx, backend)
	if err != nil {
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "" {
			t.Skipf("%s not reachable: %v", backend, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(closeAll)
	key := fmt.Sprintf("killed-leader-%d", time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+backend, childKeyEnv+"="+key)
	if resign {
		cmd.Env = append(cmd.Env, childResign+"=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "elected ") {
		t.Fatalf("child: %q, %v", line, err)
	}
	oldTerm, err := driver.ParseFence(strings.TrimSpace(strings.TrimPrefix(line, "elected ")))
	if err != nil {
		t.Fatal(err)
	}
	e, err := election.New(g, key)
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := e.Leader(ctx); err != nil || cur.Term != oldTerm {
		t.Fatalf("Leader = %+v, %v; want the child's term %v", cur, err, oldTerm)
	}
	return e, cmd, oldTerm
}
