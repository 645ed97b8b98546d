package election_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
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
	select {}
}

// TestLeaderKilled: the leader's process is SIGKILLed (no release, no
// goodbye); a candidate in this process is elected about TTL + tolerance
// later, with a greater term.
func TestLeaderKilled(t *testing.T) {
	for _, backend := range []string{"redis", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			g, closeAll, err := openGuard(ctx, backend)
			if err != nil {
				if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "" {
					t.Skipf("%s not reachable: %v", backend, err)
				}
				t.Fatal(err)
			}
			defer closeAll()
			key := fmt.Sprintf("killed-leader-%d", time.Now().UnixNano())

			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+backend, childKeyEnv+"="+key)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "elected ") {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
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
