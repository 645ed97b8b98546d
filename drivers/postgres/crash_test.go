package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard"
)

// privatePort is the preferred port of the private PostgreSQL instance of
// the crash test (loopback only); another free port is used if it is taken.
const privatePort = 5433

// freePort returns privatePort if it is free, else a free ephemeral port.
func freePort() int {
	for _, addr := range []string{"127.0.0.1:" + strconv.Itoa(privatePort), "127.0.0.1:0"} {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			return port
		}
	}
	return privatePort
}

// pgBinDir finds initdb/postgres: SYNCGUARD_PG_BINDIR, then
// /usr/lib/postgresql/<newest>/bin.
func pgBinDir() (string, error) {
	if d := os.Getenv("SYNCGUARD_PG_BINDIR"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("initdb not found under /usr/lib/postgresql/*/bin (install the postgresql server package or set SYNCGUARD_PG_BINDIR)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// privatePG is a throw-away PostgreSQL server in a temporary directory.
type privatePG struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cred *syscall.Credential
	cmd  *exec.Cmd
	exit chan struct{}

	lastPgid int
}

func (p *privatePG) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	cmd.Dir = p.dir
	return cmd
}

// startPrivatePG runs initdb and starts the server; the test fails (or
// skips without SYNCGUARD_REQUIRE_BACKENDS=1) when it cannot.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if requireBackends() {
			t.Fatal(msg + " (SYNCGUARD_REQUIRE_BACKENDS=1)")
		}
		t.Skip(msg)
	}
	bin, err := pgBinDir()
	if err != nil {
		unavailable("private PostgreSQL instance: %v", err)
	}
	p := &privatePG{t: t, bin: bin, port: freePort()}
	dir, err := os.MkdirTemp("", "syncguard-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable("running as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	out, err := p.command("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		unavailable("initdb: %v\n%s", err, out)
	}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *privatePG) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// start starts the postmaster in its own process group and waits until it
// accepts connections.
func (p *privatePG) start() {
	t := p.t
	t.Helper()
	cmd := p.command("postgres", "-D", filepath.Join(p.dir, "data"),
		"-p", strconv.Itoa(p.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+p.dir, "-c", "fsync=on", "-c", "synchronous_commit=on",
		"-c", "max_connections=40", "-c", "logging_collector=off")
	logf, err := os.Create(filepath.Join(p.dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting postgres: %v", err)
	}
	p.cmd = cmd
	p.exit = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exit)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.dsn())
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-p.exit:
			log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
			t.Fatalf("postgres exited during start-up:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("private postgres did not accept connections within 60s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the whole process group of the postmaster (postmaster and
// every backend) and waits for the postmaster to be reaped.
func (p *privatePG) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.lastPgid = p.cmd.Process.Pid
	_ = syscall.Kill(-p.lastPgid, syscall.SIGKILL)
	<-p.exit
	p.cmd = nil
	// Backends are reparented to init when the postmaster dies; the group
	// kill reached them too. Wait until the port is free again.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-p.pgid(), 0); err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *privatePG) pgid() int {
	if p.cmd != nil && p.cmd.Process != nil {
		return p.cmd.Process.Pid
	}
	return p.lastPgid
}

type crashLock struct {
	key    string
	lockID string
	fence  syncguard.Fence
	exp    int64
	epoch  int // crash epoch in which the acquire returned
}

// TestCrashSafety SIGKILLs the whole PostgreSQL process group while workers
// acquire and release, restarts it, and checks that no fence is ever
// repeated or lower than one returned before, and that every lock whose
// Acquire returned success (and whose release was never attempted) is
// still there after the restart (its TTL is far longer than the test).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	p := startPrivatePG(t)
	ctx := t.Context()
	cfg, err := pgxpool.ParseConfig(p.dsn())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 12
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := Setup(ctx, pool); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	d := newDriver(t, pool)

	const (
		workers = 8
		keys    = 96
		crashes = 3
		ttl     = 10 * time.Minute
	)
	var (
		mu       sync.Mutex
		epoch    int
		fences   = map[string][]crashLock{} // every successful acquire, in return order per key
		held     = map[string]crashLock{}   // lockID → acquired, release never attempted
		errCount int
	)
	run := func(stop <-chan struct{}) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for {
					select {
					case <-stop:
						return
					default:
					}
					key := "crash:" + strconv.Itoa(rng.IntN(keys))
					r, err := d.Acquire(ctx, key, ttl)
					if err != nil {
						mu.Lock()
						errCount++
						mu.Unlock()
						if syncguard.CodeOf(err) == 0 {
							t.Errorf("unmapped error: %v", err)
						}
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if !r.Acquired {
						continue
					}
					mu.Lock()
					l := crashLock{key: key, lockID: r.LockID, fence: r.Fence, exp: r.ExpiresAtMs, epoch: epoch}
					fences[key] = append(fences[key], l)
					held[r.LockID] = l
					mu.Unlock()
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					if rng.IntN(8) == 0 {
						continue // keep it: it must survive the crash
					}
					mu.Lock()
					delete(held, r.LockID) // release attempted: outcome may be unknown
					mu.Unlock()
					_, _ = d.Release(ctx, r.LockID)
				}
			})
		}
		wg.Wait()
	}

	for c := 0; c <= crashes; c++ {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { run(stop); close(done) }()
		time.Sleep(700 * time.Millisecond)
		if c < crashes {
			p.kill()
			time.Sleep(200 * time.Millisecond) // workers see the outage
			mu.Lock()
			epoch++
			mu.Unlock()
			p.start()
			time.Sleep(500 * time.Millisecond) // workers run against the restarted server
		}
		close(stop)
		<-done
	}
	if t.Failed() {
		return
	}

	// Fences: strictly increasing per key in the order the acquires
	// returned, never repeated, and every fence of a later epoch above
	// every fence of an earlier one.
	total := 0
	for key, ls := range fences {
		seen := map[syncguard.Fence]bool{}
		maxBefore := map[int]syncguard.Fence{}
		for i, l := range ls {
			total++
			// Holders of one key never overlap, so each acquire returned
			// after the previous holder's: return order is fence order.
			if i > 0 && l.fence <= ls[i-1].fence {
				t.Errorf("key %s: fence %v returned after %v", key, l.fence, ls[i-1].fence)
			}
			if seen[l.fence] {
				t.Errorf("key %s: fence %v returned twice", key, l.fence)
			}
			seen[l.fence] = true
			if l.fence > maxBefore[l.epoch] {
				maxBefore[l.epoch] = l.fence
			}
		}
		for _, l := range ls {
			for e, m := range maxBefore {
				if e < l.epoch && l.fence <= m {
					t.Errorf("key %s: fence %v after restart %d is not above %v returned before it", key, l.fence, l.epoch, m)
				}
			}
		}
	}
	// Held locks: still stored (their TTL has not run out).
	vanished := 0
	for id, l := range held {
		info, err := d.LookupByID(ctx, id)
		if err != nil {
			t.Fatalf("LookupByID: %v", err)
		}
		if info == nil || info.Fence != l.fence {
			vanished++
			t.Errorf("lock %s on %s (fence %v, acquired in epoch %d) vanished: %+v", id, l.key, l.fence, l.epoch, info)
		}
	}
	t.Logf("%d crashes; %d successful acquisitions, %d held locks checked, %d errors during outages",
		crashes, total, len(held), errCount)
	if total == 0 || len(held) == 0 {
		t.Error("no acquisitions recorded")
	}
}
