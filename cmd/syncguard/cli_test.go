package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/cli"
	"github.com/syncguard/syncguard/internal/drivertest"
	"go.uber.org/goleak"
)

// These tests drive the real binary, built once in TestMain, against the
// Redis server on 127.0.0.1:6379 (SYNCGUARD_REDIS_ADDR overrides). Without
// Redis they skip, or fail under SYNCGUARD_REQUIRE_BACKENDS=1.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "syncguard-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "syncguard")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the syncguard binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// Goroutine leaks of the tests themselves (the binary runs in child
	// processes). rueidis keeps a process-wide clock goroutine.
	if code == 0 {
		if err := goleak.Find(drivertest.GoleakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func redisURL(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("SYNCGUARD_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err == nil {
		err = c.Do(context.Background(), c.B().Ping().Build()).Error()
		c.Close()
	}
	if err != nil {
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
			t.Fatalf("Redis required at %s: %v", addr, err)
		}
		t.Skipf("Redis unavailable at %s (%v); set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead", addr, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "redis://" + addr + "?prefix=sgcli:" + hex.EncodeToString(b[:])
}

// postgresURL returns the PostgreSQL test database's URL, or skips.
func postgresURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SYNCGUARD_POSTGRES_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	if out, err := exec.Command("pg_isready", "-d", u).CombinedOutput(); err != nil {
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
			t.Fatalf("PostgreSQL required at %s: %v %s", u, err, out)
		}
		t.Skipf("PostgreSQL unavailable at %s (%v); set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead", u, err)
	}
	return u
}

func randomKey(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + ":" + hex.EncodeToString(b[:])
}

// sg runs the binary and returns its exit code, stdout and stderr.
func sg(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return exitCodeOf(err), out.String(), errb.String()
}

// TestRunNeverOverlaps: invocations of `run` in parallel on one key take
// turns: the intervals their commands append to a file never overlap.
func TestRunNeverOverlaps(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backend := map[string]func(*testing.T) string{"redis": redisURL, "postgres": postgresURL}[name](t)
			testNeverOverlaps(t, backend, randomKey("overlap"))
		})
	}
}

func testNeverOverlaps(t *testing.T, backend, key string) {
	log := filepath.Join(t.TempDir(), "log")
	script := `echo "start $(date +%s%N)" >> "$1"; sleep 0.15; echo "end $(date +%s%N)" >> "$1"`
	var wg sync.WaitGroup
	const procs = 4
	codes := make([]int, procs)
	for i := range procs {
		wg.Go(func() {
			code, _, stderr := sg(t, "run", "--backend", backend, "--key", key, "--ttl", "5s", "--wait", "30s",
				"--", "sh", "-c", script, "sh", log)
			codes[i] = code
			if code != 0 {
				t.Errorf("run %d exited %d: %s", i, code, stderr)
			}
		})
	}
	wg.Wait()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ start, end int64 }
	var spans []span
	var cur int64 = -1
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		kind, ts, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(ts, 10, 64)
		switch kind {
		case "start":
			if cur != -1 {
				t.Fatalf("two starts without an end: overlapping critical sections\n%s", b)
			}
			cur = n
		case "end":
			spans = append(spans, span{cur, n})
			cur = -1
		}
	}
	if len(spans) != procs {
		t.Fatalf("%d complete sections; want %d\n%s", len(spans), procs, b)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			t.Errorf("section %d starts before section %d ends", i, i-1)
		}
	}
}

func TestRunExitCodesAndEnvironment(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	// The command's exit code passes through; the lock's identity reaches it.
	code, out, stderr := sg(t, "run", "--backend", backend, "--key", "env", "--",
		"sh", "-c", `echo "fence=$SYNCGUARD_FENCE id=$SYNCGUARD_LOCK_ID key=$SYNCGUARD_KEY"; exit 7`)
	if code != 7 {
		t.Errorf("exit code %d; want the command's 7 (stderr %s)", code, stderr)
	}
	if !regexp.MustCompile(`^fence=\d{15} id=[A-Za-z0-9_-]{22} key=env\n$`).MatchString(out) {
		t.Errorf("command saw %q", out)
	}
	if !strings.Contains(stderr, "acquired") || !strings.Contains(stderr, "released") {
		t.Errorf("stderr lacks acquired/released: %s", stderr)
	}

	// A busy lock with --no-wait exits 75 without running the command.
	holder := exec.Command(binary, "run", "--backend", backend, "--key", "busy", "--", "sh", "-c", "echo held; exec sleep 5")
	stdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("holder printed %q", line)
	}
	code, out, stderr = sg(t, "run", "--backend", backend, "--key", "busy", "--no-wait", "--", "echo", "ran")
	if code != cli.ExitBusy || out != "" {
		t.Errorf("--no-wait on a busy key: exit %d, stdout %q; want %d and no output (stderr %s)", code, out, cli.ExitBusy, stderr)
	}
	code, _, _ = sg(t, "run", "--backend", backend, "--key", "busy", "--wait", "300ms", "--", "echo", "ran")
	if code != cli.ExitBusy {
		t.Errorf("--wait 300ms on a busy key: exit %d; want %d", code, cli.ExitBusy)
	}
	// status shows the held lock; JSON for scripts.
	code, out, _ = sg(t, "status", "--backend", backend, "--json", "busy")
	var st struct {
		Locked bool   `json:"locked"`
		Fence  string `json:"fence"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || !st.Locked || len(st.Fence) != 15 {
		t.Errorf("status --json = %d %q (%v)", code, out, err)
	}
	code, out, _ = sg(t, "status", "--raw", "--backend", backend, "free-key")
	if code != 0 || out != "free-key: free\n" {
		t.Errorf("status of a free key = %d %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"run", "--backend", backend, "--", "true"}, cli.ExitUsage},                              // no key
		{[]string{"run", "--backend", backend, "--key", "k"}, cli.ExitUsage},                              // no command
		{[]string{"run", "--backend", "bogus://x", "--key", "k", "--", "true"}, cli.ExitUsage},            // bad URL
		{[]string{"run", "--backend", backend, "--key", "", "--", "true"}, cli.ExitUsage},                 // empty key
		{[]string{"run", "--backend", backend, "--key", "k", "--ttl", "0s", "--", "true"}, cli.ExitUsage}, // bad TTL
		{[]string{"run", "--backend", backend, "--key", "nocmd", "--", "/nonexistent/cmd"}, cli.ExitNoCommand},
		{[]string{"release", "--backend", backend, "not-a-lock-id"}, cli.ExitUsage},
		{[]string{"release", "--backend", backend, "AAAAAAAAAAAAAAAAAAAAAA"}, cli.ExitFailure}, // deprecated positional ID
		{[]string{"release", "--backend", backend, "--key", "free-key"}, cli.ExitFailure},
		{[]string{"run", "--backend", "memory://", "--key", "mem", "--", "true"}, cli.ExitOK},
	} {
		if code, _, stderr := sg(t, tc.args...); code != tc.code {
			t.Errorf("syncguard %v: exit %d; want %d (stderr %s)", tc.args, code, tc.code, stderr)
		}
	}
}

// TestRunForwardsSignals: SIGTERM to syncguard reaches the command, whose
// own exit code comes back; the lock is released afterwards.
func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	cmd := exec.Command(binary, "run", "--backend", backend, "--key", "sig", "--",
		"sh", "-c", `trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done`)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, _ := r.ReadString('\n'); line != "ready\n" {
		t.Fatalf("command printed %q", line)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := r.ReadString('\n')
	err := cmd.Wait()
	if code := exitCodeOf(err); code != 42 || rest != "got-term\n" {
		t.Errorf("after SIGTERM: exit %d, output %q; want 42 and got-term (stderr %s)", code, rest, stderr.String())
	}
	code, out, _ := sg(t, "status", "--raw", "--backend", backend, "sig")
	if code != 0 || out != "sig: free\n" {
		t.Errorf("status after the run = %d %q; want free", code, out)
	}
}

// TestRunLostLock: the lock is released behind the command's back (with
// `syncguard release`); the next heartbeat finds it gone, the command is
// stopped and run exits 76.
func TestRunLostLock(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	cmd := exec.Command(binary, "run", "--backend", backend, "--key", "lost", "--ttl", "900ms", "--grace", "2s", "--",
		"sh", "-c", `echo "$SYNCGUARD_LOCK_ID"; exec sleep 30`)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, _ := bufio.NewReader(stdout).ReadString('\n')
	id = strings.TrimSpace(id)
	start := time.Now()
	if code, out, errs := sg(t, "release", "--backend", backend, id); code != 0 {
		t.Fatalf("release %s: %d %s %s", id, code, out, errs)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCodeOf(err); code != cli.ExitLost {
			t.Errorf("exit %d; want %d (stderr %s)", code, cli.ExitLost, stderr.String())
		}
		if !strings.Contains(stderr.String(), "was lost") {
			t.Errorf("stderr lacks the lost message: %s", stderr.String())
		}
		t.Logf("lost detected and command stopped %v after the release", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("run did not stop within 10s of losing its lock; stderr %s", stderr.String())
	}
}

func TestRunJSONEvents(t *testing.T) {
	t.Parallel()
	code, _, stderr := sg(t, "run", "--backend", "memory://", "--key", "j", "--json", "--", "true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var ev struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		kinds = append(kinds, ev.Event)
	}
	if strings.Join(kinds, ",") != "acquired,released" {
		t.Errorf("events %v; want acquired, released", kinds)
	}
}

// exitCodeOf returns a finished command's exit code (128+N for signal N).
func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}
