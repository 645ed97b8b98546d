// Package pgserver starts private, throw-away PostgreSQL servers for crash
// tests: initdb into a temporary directory, a postmaster in its own process
// group that a test can SIGKILL and restart. It needs the server binaries
// (SYNCGUARD_PG_BINDIR, else /usr/lib/postgresql/<newest>/bin).
package pgserver

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
)

// freePort returns a free ephemeral loopback port. (A fixed preferred port
// made two private servers started at once by tests of different packages
// pick the same one.)
func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 5433
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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

// Server is a throw-away PostgreSQL server in a temporary directory.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	cred *syscall.Credential
	cmd  *exec.Cmd
	exit chan struct{}
}

func (p *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	cmd.Dir = p.dir
	return cmd
}

// Start runs initdb into a temporary directory and starts the server on
// 127.0.0.1 (a free ephemeral port), as the postgres OS user
// when running as root. t fails when it cannot — or skips, unless
// SYNCGUARD_REQUIRE_BACKENDS=1. The server is killed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
			t.Fatal(msg + " (SYNCGUARD_REQUIRE_BACKENDS=1)")
		}
		t.Skip(msg)
	}
	bin, err := pgBinDir()
	if err != nil {
		unavailable("private PostgreSQL instance: %v", err)
	}
	p := &Server{t: t, bin: bin, port: freePort()}
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
	p.Restart()
	t.Cleanup(p.Kill)
	return p
}

// DSN is the server's connection string (database postgres, user postgres).
func (p *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Restart starts the postmaster (again, after Kill) in its own process
// group and waits until it accepts connections.
func (p *Server) Restart() {
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
		conn, err := pgx.Connect(ctx, p.DSN())
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

// Kill SIGKILLs the postmaster and every process it started and waits
// until they are gone. PostgreSQL makes each backend the leader of a
// process group of its own, so killing the postmaster's group is not
// enough; and a backend forked just before the postmaster died is
// reparented, so its parent no longer names it. Every server process
// works in the data directory, which is how Kill finds them all: one that
// survived would hold the shared memory and fail the next Restart ("pre-
// existing shared memory block is still in use"). It is a no-op when the
// server is not running.
func (p *Server) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for _, k := range p.serverProcs() {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	<-p.exit
	p.cmd = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := p.serverProcs()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Errorf("private postgres: processes %v still alive 10s after SIGKILL", left)
			return
		}
		for _, k := range left {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serverProcs lists the live (not zombie) processes whose working
// directory is the server's data directory.
func (p *Server) serverProcs() []int {
	data := filepath.Join(p.dir, "data")
	if real, err := filepath.EvalSymlinks(data); err == nil {
		data = real // /proc/<pid>/cwd is the resolved path
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == data && !zombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// zombie reports whether pid has exited and awaits its parent's wait.
func zombie(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] == "Z"
}

// statFields returns the fields of /proc/pid/stat after the command name:
// state, ppid, ….
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}
