package reliability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncguard/syncguard/reliability/history"
	"github.com/syncguard/syncguard/reliability/workload"
)

// The private PostgreSQL server below is the one of drivers/postgres's
// crash test (a throw-away initdb'd instance on a free loopback port, run
// in its own process group so that SIGKILL reaches every backend).

// privatePort is the preferred port of the private PostgreSQL instance of
// the crash test (loopback only); another free port is used if it is taken.
const privatePort = 5434

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

// TestFaultPostgresCrash: goroutine clients and two worker processes run
// the workload on a private PostgreSQL server that is SIGKILLed (the whole
// process group) twice and restarted. PostgreSQL is durable (fsync and
// synchronous_commit on): the model gets no failover event, so every
// acknowledged acquisition and write must survive the crash.
func TestFaultPostgresCrash(t *testing.T) {
	t.Parallel()
	p := startPrivatePG(t)
	dsn := p.dsn()
	schema := pgSchema(t, dsn)
	d := pgDriver(t, pgPool(t, dsn, schema, nil))
	cfg := defaultConfig()
	cfg.Duration = time.Hour
	cfg.OpTimeout = 2 * time.Second
	cfg.NotApplied = pgNotApplied
	var rec history.Recorder
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var procs []*workerProc
	for i := range 2 {
		procs = append(procs, startWorker(t, "-driver", "postgres", "-dsn", dsn, "-schema", schema,
			"-clients", "2", "-client-base", strconv.Itoa(100+10*i), "-duration", "90s", "-ttl", cfg.TTL.String(),
			"-keys", strings.Join(cfg.Keys, ","), "-seed", strconv.Itoa(i)))
	}
	done := make(chan *workload.Counts, 1)
	go func() {
		counts, problems := workload.Run(ctx, d, &rec, cfg)
		for _, p := range problems {
			t.Errorf("%s", p)
		}
		done <- counts
	}()
	const crashes = 2
	for range crashes {
		sleepCtx(ctx, 1500*time.Millisecond)
		start := time.Now()
		p.kill()
		sleepCtx(ctx, 300*time.Millisecond)
		p.start()
		t.Logf("SIGKILLed PostgreSQL and restarted it in %v", time.Since(start).Round(time.Millisecond))
	}
	sleepCtx(ctx, 1500*time.Millisecond)
	cancel()
	counts := <-done
	ops, errs := counts.Snapshot()
	t.Logf("postgres crash: %d crashes; in-process clients made %d calls, errors by code: %s", crashes, ops, workload.FormatErrors(errs))
	for _, w := range procs {
		_ = w.cmd.Process.Signal(syscall.SIGINT)
	}
	for _, w := range procs {
		rec.AddOp(w.wait(t, 30*time.Second)...)
	}
	checkHistory(t, "postgres crash", rec.Ops())
}
