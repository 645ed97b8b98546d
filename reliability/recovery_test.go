package reliability

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/internal/pgserver"
)

// restartable is a private server the recovery test kills and restarts.
type restartable struct {
	kill, start func()
}

// recoveryRestarts is how many times TestRecoveryAfterRestart restarts each
// server.
const recoveryRestarts = 3

// recoverAfterRestarts SIGKILLs and restarts the server behind g several
// times, with the same client and Guard throughout. Each time it measures
// the time from the restarted server accepting connections to the first
// successful acquisition; checks that a waiter that started during the
// outage (Acquire, Timeout 10s, context without deadline) gets its lock
// once the server is back; and that a lease held across the restart is
// reported held (Extend true) exactly when the backend still has it
// (durable is whether the server keeps its data).
func recoverAfterRestarts[C driver.Capabilities](t *testing.T, name string, g *syncguard.Guard[C], srv restartable, durable bool) {
	ctx := context.Background()
	for i := range recoveryRestarts {
		held, err := g.Acquire(ctx, fmt.Sprintf("held%d", i), syncguard.TTL(20*time.Second))
		if err != nil {
			t.Fatalf("%s: Acquire before restart %d: %v", name, i, err)
		}
		srv.kill()
		down := time.Now()
		waited := make(chan error, 1)
		go func() {
			l, err := g.Acquire(ctx, fmt.Sprintf("waiter%d", i), syncguard.Timeout(10*time.Second), syncguard.MaxRetries(1000))
			if err == nil {
				_, err = l.Release(ctx)
			}
			waited <- err
		}()
		// A call during the outage fails fast.
		start := time.Now()
		if _, err := g.TryAcquire(ctx, "during"); err == nil {
			t.Errorf("%s: TryAcquire succeeded with the server down", name)
		} else if code := driver.CodeOf(err); code != driver.ServiceUnavailable && code != driver.NetworkTimeout {
			t.Errorf("%s: TryAcquire with the server down: %v", name, err)
		}
		during := time.Since(start)
		time.Sleep(300 * time.Millisecond)
		srv.start()
		up := time.Now()
		var first time.Duration
		for {
			l, err := g.TryAcquire(ctx, fmt.Sprintf("after%d", i))
			if err == nil {
				first = time.Since(up)
				l.Close()
				break
			}
			if time.Since(up) > 15*time.Second {
				t.Fatalf("%s: no acquisition within 15s after restart %d: %v", name, i, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := <-waited; err != nil {
			t.Errorf("%s: the waiter that started during the outage: %v", name, err)
		}
		waiterTook := time.Since(down)
		ok, err := held.Extend(ctx, 20*time.Second)
		if err != nil {
			t.Fatalf("%s: Extend after restart %d: %v", name, i, err)
		}
		locked, err := g.IsLocked(ctx, held.Key())
		if err != nil {
			t.Fatal(err)
		}
		if ok != locked || ok != durable {
			t.Errorf("%s: after restart %d the lease held across it reports Extend %v, the backend IsLocked %v (durable %v)", name, i, ok, locked, durable)
		}
		held.Close()
		t.Logf("%s restart %d: TryAcquire while down answered in %v; first success %v after the server accepted connections again; waiter got its lock %v after the kill; lease held across: Extend %v, IsLocked %v",
			name, i+1, during.Round(time.Millisecond), first.Round(time.Millisecond), waiterTook.Round(time.Millisecond), ok, locked)
	}
}

// TestRecoveryAfterRestart: a private redis-server (no persistence) and a
// private PostgreSQL server, each SIGKILLed and restarted three times under
// one client.
func TestRecoveryAfterRestart(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		r := startPrivateRedis(t, privateRedisPort(2))
		g, _ := boundedRedisGuard(t, docsRedisClient(t, r.addr()))
		recoverAfterRestarts(t, "Redis", g, restartable{r.kill, r.start}, false)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s := pgserver.Start(t)
		schema := pgSchema(t, s.DSN())
		g, _, _ := boundedPGGuard(t, pgPool(t, s.DSN(), schema, nil))
		recoverAfterRestarts(t, "PostgreSQL", g, restartable{s.Kill, s.Restart}, true)
	})
}

// lostBeforeStolen: a holder whose connection to the backend is
// blackholed must learn it (Lost closed, its context cancelled) strictly
// before another client, connected directly, acquires the key. It returns
// the margin.
func lostBeforeStolen[C driver.Capabilities](t *testing.T, holder, thief *syncguard.Guard[C], p *proxy, ttl time.Duration) time.Duration {
	t.Helper()
	ctx := context.Background()
	key := "lbs:" + token()
	l, err := holder.Acquire(ctx, key, syncguard.TTL(ttl), syncguard.AutoExtend(true))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	time.Sleep(ttl / 2) // at least one heartbeat
	p.toxic(t, blackholeToxic)
	cut := time.Now()
	defer p.heal()
	lost := make(chan time.Time, 1)
	go func() {
		<-l.Lost()
		at := time.Now()
		if !errors.Is(context.Cause(l.Context()), syncguard.ErrLockLost) {
			t.Errorf("Lost closed but the lease's context cause is %v", context.Cause(l.Context()))
		}
		lost <- at
	}()
	var stolen time.Time
	for {
		tl, err := thief.TryAcquire(ctx, key)
		if err == nil {
			stolen = time.Now()
			tl.Close()
			break
		}
		if !errors.Is(err, syncguard.ErrLocked) {
			t.Fatalf("thief: %v", err)
		}
		if time.Since(cut) > 10*time.Second {
			t.Fatal("the thief could not acquire the key within 10s of the blackhole")
		}
		time.Sleep(2 * time.Millisecond)
	}
	var lostAt time.Time
	select {
	case lostAt = <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the thief acquired the key and the holder's Lost had not closed 5s later")
	}
	margin := stolen.Sub(lostAt)
	if margin <= 0 {
		t.Errorf("the thief acquired the key %v before the holder's Lost closed", -margin)
	}
	return margin
}

// TestLostBeforeStolen measures the margin on Redis and PostgreSQL (TTL 1s,
// holder's driver bound 400ms) over several rounds.
func TestLostBeforeStolen(t *testing.T) {
	t.Parallel()
	const ttl, rounds = time.Second, 3
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		p := startProxy(t, redisAddr())
		prefix := "sglbs" + token()
		hd, err := redis.New(docsRedisClient(t, p.addr()), redis.WithKeyPrefix(prefix), redis.WithCallTimeout(matrixBound))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hd.Close)
		td := redisDriver(t, redisClient(t, []string{redisAddr()}), prefix)
		holder, thief := syncguard.New(hd, syncguard.WithOnReleaseError(func(error, string, string) {})), syncguard.New(td)
		var ms []time.Duration
		for range rounds {
			ms = append(ms, lostBeforeStolen(t, holder, thief, p, ttl).Round(time.Millisecond))
		}
		t.Logf("Redis: Lost closed %v before another client acquired (TTL %v)", ms, ttl)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		schema := pgSchema(t, pgDSN())
		p := startProxy(t, pgHostPort())
		hd, err := postgres.New(proxiedPool(t, schema, p.addr()), postgres.WithCallTimeout(matrixBound))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hd.Close)
		td := pgDriver(t, pgPool(t, pgDSN(), schema, nil))
		holder, thief := syncguard.New(hd, syncguard.WithOnReleaseError(func(error, string, string) {})), syncguard.New(td)
		var ms []time.Duration
		for range rounds {
			ms = append(ms, lostBeforeStolen(t, holder, thief, p, ttl).Round(time.Millisecond))
		}
		t.Logf("PostgreSQL: Lost closed %v before another client acquired (TTL %v)", ms, ttl)
	})
}
