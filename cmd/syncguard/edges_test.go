package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/cli"
	"github.com/syncguard/syncguard/internal/pgserver"
)

// sgEnv runs the binary with extra environment variables and stdin.
func sgEnv(t *testing.T, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return exitCodeOf(err), out.String(), errb.String()
}

// closedPort returns a loopback port where nothing listens: a listener's,
// closed at once.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// privateRedis starts a throw-away redis-server on port (6450-6469 belong
// to these tests) with extra arguments; stop kills it.
func privateRedis(t *testing.T, port int, args ...string) (stop func()) {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
			t.Fatal("redis-server not found")
		}
		t.Skip("redis-server not found")
	}
	cmd := exec.Command(path, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("private redis-server on %d did not start: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkJSONLines fails unless every line of s is a JSON object.
func checkJSONLines(t *testing.T, what, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s: line is not JSON: %q", what, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// commands runs the same backend URL through run, status and release.
var commands = []struct {
	name string
	args func(backend string) []string
	env  []string
}{
	{"run", func(b string) []string { return []string{"run", "--backend", b, "--key", "k", "--", "true"} }, nil},
	{"status", func(b string) []string { return []string{"status", "--backend", b, "k"} }, nil},
	{"release", func(b string) []string { return []string{"release", "--backend", b} }, []string{"SYNCGUARD_LOCK_ID=AAAAAAAAAAAAAAAAAAAAAA"}},
}

// TestBackendURLErrors: a backend that cannot be used exits 69 (EX_UNAVAILABLE)
// on run, status and release, a URL that cannot work exits 2, each with a
// message that names what to fix, the password masked, and under --json
// every line of stderr is JSON.
func TestBackendURLErrors(t *testing.T) {
	t.Parallel()
	pg := postgresURL(t)
	pgAt := func(user, db string, port int) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, port, db)
	}
	redisPort := closedPort(t)
	pgPort := closedPort(t)
	tests := []struct {
		name    string
		backend string
		code    int
		want    string
		all     bool // also through status and release, and as JSON
	}{
		{"redis refused", fmt.Sprintf("redis://user:secret@127.0.0.1:%d", redisPort), cli.ExitUnavailable, "connection refused: is Redis running there?", true},
		{"postgres refused", fmt.Sprintf("postgres://postgres:secret@127.0.0.1:%d/test?sslmode=disable", pgPort), cli.ExitUnavailable, "connection refused: is PostgreSQL running there?", true},
		{"postgres missing database", pgAt("postgres:secret", "no_such_db_sgcli", 5432), cli.ExitUnavailable, `has no database "no_such_db_sgcli": create it`, true},
		{"postgres unknown role", pgAt("no_such_role_sgcli:secret", "test", 5432), cli.ExitUnavailable, `has no role "no_such_role_sgcli"`, false},
		{"postgres unknown option", pg + "&foo=bar", cli.ExitUsage, `unknown option (unrecognized configuration parameter "foo")`, false},
		{"redis single slash", "redis:/127.0.0.1:6511", cli.ExitUsage, "has no host: write redis://HOST:PORT", false},
		{"redis opaque", "redis:127.0.0.1:6511", cli.ExitUsage, "has no host", false},
		{"redis path not a number", "redis://127.0.0.1:6379/x", cli.ExitUsage, "the path is the database number", false},
		{"redis unknown option", "redis://user:secret@127.0.0.1:6379?foo=bar", cli.ExitUsage, `unknown option "foo"`, false},
		{"redis option of sentinel", "redis://127.0.0.1:6379?master_set=x", cli.ExitUsage, `unknown option "master_set"`, false},
		{"redis client cache (always off)", "redis://127.0.0.1:6379?client_cache=1", cli.ExitUsage, `unknown option "client_cache"`, false},
		{"memory option", "memory://?foo=bar", cli.ExitUsage, `unknown option "foo" (memory:// takes no options)`, false},
		{"bad escape", "redis://user:secret@127.0.0.1:6599/%zz", cli.ExitUsage, `invalid backend URL redis://user:xxxxx@127.0.0.1:6599/%zz: invalid URL escape "%zz"`, true},
		{"bad escape postgres", "postgres://user:secret@127.0.0.1:6599/%zz", cli.ExitUsage, "invalid URL escape", false},
		{"bad port", "redis://user:secret@127.0.0.1:port", cli.ExitUsage, "user:xxxxx@", false},
		{"no scheme", "127.0.0.1:6379", cli.ExitUsage, "", false},
		{"unknown scheme", "mongodb://user:secret@h", cli.ExitUsage, `unknown backend URL scheme "mongodb"`, false},
	}
	for _, tt := range tests {
		for _, c := range commands {
			if !tt.all && c.name != "run" {
				continue
			}
			t.Run(tt.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				code, out, stderr := sgEnv(t, c.env, "", c.args(tt.backend)...)
				if code != tt.code || !strings.Contains(stderr, tt.want) {
					t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
				}
				if out != "" {
					t.Errorf("stdout %q; want none", out)
				}
				if strings.Contains(stderr, "secret") {
					t.Errorf("stderr shows the password: %q", stderr)
				}
				if !tt.all {
					return
				}
				// The same through SYNCGUARD_BACKEND, as JSON.
				args := append([]string{c.args("")[0], "--json"}, c.args("")[1:]...)
				args = dropBackendFlag(args)
				code, _, stderr = sgEnv(t, append([]string{"SYNCGUARD_BACKEND=" + tt.backend}, c.env...), "", args...)
				if code != tt.code || strings.Contains(stderr, "secret") {
					t.Errorf("--json with SYNCGUARD_BACKEND: exit %d, stderr %q; want %d, no password", code, stderr, tt.code)
				}
				lines := checkJSONLines(t, "stderr", stderr)
				if len(lines) != 1 || lines[0]["event"] != "error" || lines[0]["exitCode"] != float64(tt.code) {
					t.Errorf("--json stderr = %v; want one error event with exitCode %d", lines, tt.code)
				}
			})
		}
	}
}

// dropBackendFlag removes "--backend X" from args.
func dropBackendFlag(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--backend" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestStoppedBackendsExit69: run works against a private Redis and a
// private PostgreSQL, and exits 69 once each is stopped; PostgreSQL
// refusing a password (28P01) and Redis refusing credentials exit 69 too.
func TestStoppedBackendsExit69(t *testing.T) {
	t.Parallel()
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		const port = 6450
		stop := privateRedis(t, port)
		backend := fmt.Sprintf("redis://127.0.0.1:%d", port)
		if code, _, stderr := sg(t, "run", "--backend", backend, "--key", "k", "--", "true"); code != 0 {
			t.Fatalf("run against the live server: exit %d: %s", code, stderr)
		}
		stop()
		code, _, stderr := sg(t, "run", "--backend", backend, "--key", "k", "--", "true")
		if code != cli.ExitUnavailable || !strings.Contains(stderr, "connection refused") {
			t.Errorf("run against the stopped server: exit %d, stderr %q; want 69", code, stderr)
		}
	})
	t.Run("redis credentials", func(t *testing.T) {
		t.Parallel()
		const port = 6451
		privateRedis(t, port, "--requirepass", "right-password")
		for _, tc := range []struct{ backend, want string }{
			{fmt.Sprintf("redis://:wrong-secret@127.0.0.1:%d", port), "refused the credentials"},
			{fmt.Sprintf("redis://127.0.0.1:%d", port), "refused the credentials"},
			{fmt.Sprintf("redis://nobody:wrong-secret@127.0.0.1:%d", port), "refused the credentials"},
		} {
			code, _, stderr := sg(t, "run", "--backend", tc.backend, "--key", "k", "--", "true")
			if code != cli.ExitUnavailable || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "secret") {
				t.Errorf("%s: exit %d, stderr %q; want 69, %q and no password", tc.backend, code, stderr, tc.want)
			}
		}
		if code, _, stderr := sg(t, "run", "--backend", fmt.Sprintf("redis://:right-password@127.0.0.1:%d", port), "--key", "k", "--", "true"); code != 0 {
			t.Errorf("right password: exit %d: %s", code, stderr)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		srv := pgserver.Start(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, srv.DSN())
		if err != nil {
			t.Fatal(err)
		}
		// Password authentication for every user but postgres.
		var hba string
		for _, q := range []string{
			"CREATE ROLE sgpw LOGIN PASSWORD 'right-password'",
			"SHOW hba_file",
		} {
			if q == "SHOW hba_file" {
				err = conn.QueryRow(ctx, q).Scan(&hba)
			} else {
				_, err = conn.Exec(ctx, q)
			}
			if err != nil {
				t.Fatal(q, err)
			}
		}
		rules := "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
		if _, err := conn.Exec(ctx, fmt.Sprintf("COPY (SELECT unnest(string_to_array(%s, E'\\n'))) TO %s",
			quote(strings.TrimSpace(rules)), quote(hba))); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		port := strings.TrimPrefix(strings.Split(strings.Split(srv.DSN(), "@")[1], "/")[0], "127.0.0.1:")
		wrong := "postgres://sgpw:wrong-secret@127.0.0.1:" + port + "/postgres?sslmode=disable"
		var code int
		var stderr string
		// pg_reload_conf signals the postmaster; the rules apply shortly after.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			code, _, stderr = sg(t, "run", "--backend", wrong, "--key", "k", "--", "true")
			if code != 0 || time.Now().After(deadline) {
				break
			}
		}
		if code != cli.ExitUnavailable || !strings.Contains(stderr, `refused the password of user "sgpw"`) || strings.Contains(stderr, "secret") {
			t.Errorf("wrong password: exit %d, stderr %q; want 69, the user named, no password", code, stderr)
		}
		if code, _, stderr := sg(t, "run", "--backend", srv.DSN(), "--key", "k", "--", "true"); code != 0 {
			t.Fatalf("run against the live server: exit %d: %s", code, stderr)
		}
		srv.Kill()
		code, _, stderr = sg(t, "run", "--backend", srv.DSN(), "--key", "k", "--", "true")
		if code != cli.ExitUnavailable || !strings.Contains(stderr, "connection refused") {
			t.Errorf("run against the stopped server: exit %d, stderr %q; want 69", code, stderr)
		}
	})
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestHelp: --help (and -h) of every subcommand exits 0 and prints, on
// stdout, its usage with its positional arguments.
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd  string
		want []string
	}{
		{"run", []string{"Usage: syncguard run", "-- COMMAND [ARGS…]", "Arguments:", "-quiet", "-raw", "Backend URLs"}},
		{"status", []string{"Usage: syncguard status", "KEY", "Arguments:", "release --key KEY"}},
		{"release", []string{"Usage: syncguard release", "--key KEY", "SYNCGUARD_LOCK_ID", "standard input"}},
		{"demo", []string{"Usage: syncguard demo", "-workers"}},
		{"version", []string{"Usage: syncguard version"}},
	}
	for _, tt := range tests {
		flags := []string{"--help"}
		if tt.cmd == "run" {
			flags = append(flags, "-h", "-help")
		}
		for _, flag := range flags {
			t.Run(tt.cmd+flag, func(t *testing.T) {
				t.Parallel()
				code, out, stderr := sg(t, tt.cmd, flag)
				if code != 0 || stderr != "" {
					t.Errorf("exit %d, stderr %q; want 0 and none", code, stderr)
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("help lacks %q:\n%s", w, out)
					}
				}
				if tt.cmd == "version" && strings.HasPrefix(out, "syncguard ") {
					t.Errorf("version --help printed the version: %q", out)
				}
			})
		}
	}
	// --json help is one JSON line.
	code, out, _ := sg(t, "status", "--json", "--help")
	if lines := checkJSONLines(t, "status --json --help", out); code != 0 || len(lines) != 1 || !strings.Contains(fmt.Sprint(lines[0]["help"]), "KEY") {
		t.Errorf("status --json --help = %d %q", code, out)
	}
}

// TestJSONErrorsAndQuiet: under --json every line syncguard itself writes
// is JSON, usage errors included; --quiet leaves only errors.
func TestJSONErrorsAndQuiet(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"run", "--json", "--bogus"},
		{"run", "--json", "--backend", "memory://"},
		{"run", "--json", "--backend", "memory://", "--key", "k", "--ttl", "1ms", "--", "true"},
		{"run", "--json", "--backend", "memory://", "--key", "k", "--", "/nonexistent/cmd"},
		{"run", "--json", "--backend", "memory://", "--key", "\xff", "--", "true"},
		{"status", "--json", "--backend", "memory://"},
		{"status", "--json", "--backend", "memory://", "a", "b"},
		{"release", "--json", "--backend", "memory://", "--key", "k", "AAAAAAAAAAAAAAAAAAAAAA"},
		{"release", "--json", "--backend", "memory://"}, // no ID on stdin
		{"release", "--json", "--backend", "memory://", "not-an-id"},
		{"demo", "--json", "-workers", "0"},
		{"version", "--json", "extra"},
	} {
		code, _, stderr := sg(t, args...)
		lines := checkJSONLines(t, fmt.Sprint(args), stderr)
		hasError := false
		for _, l := range lines {
			hasError = hasError || l["event"] == "error"
		}
		if code == 0 || !hasError {
			t.Errorf("%v: exit %d, stderr %q; want a failure reported as a JSON error event", args, code, stderr)
		}
	}
	code, _, stderr := sg(t, "run", "--json", "--backend", "memory://", "--key", "k", "--", "true")
	if lines := checkJSONLines(t, "run --json", stderr); code != 0 || len(lines) != 2 {
		t.Errorf("run --json: exit %d, %d lines %q", code, len(lines), stderr)
	}
	code, out, stderr := sg(t, "run", "--quiet", "--backend", "memory://", "--key", "k", "--", "echo", "ran")
	if code != 0 || out != "ran\n" || stderr != "" {
		t.Errorf("run --quiet: exit %d, stdout %q, stderr %q; want 0, the command's output only", code, out, stderr)
	}
	code, _, stderr = sg(t, "run", "--quiet", "--backend", "memory://", "--key", "k", "--ttl", "1ms", "--", "true")
	if code != cli.ExitUsage || !strings.Contains(stderr, "--ttl") {
		t.Errorf("run --quiet with an error: exit %d, stderr %q; want the error", code, stderr)
	}
}

// TestQuietBusy: a busy --no-wait run under --quiet prints nothing and
// exits 75 (a cron job that overlaps writes no mail).
func TestQuietBusy(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	holder := exec.Command(binary, "run", "--backend", backend, "--key", "qbusy", "--", "sh", "-c", "echo held; exec sleep 5")
	stdout, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Signal(syscall.SIGTERM); _ = holder.Wait() }()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("holder printed %q", line)
	}
	code, out, stderr := sg(t, "run", "--quiet", "--no-wait", "--backend", backend, "--key", "qbusy", "--", "echo", "ran")
	if code != cli.ExitBusy || out != "" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 75 and silence", code, out, stderr)
	}
}

// TestChildEnvironmentAndHashes: the command does not inherit
// SYNCGUARD_BACKEND (it may hold a password); output shows hashes of the
// key and lock ID, the raw values only with --raw.
func TestChildEnvironmentAndHashes(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	key := randomKey("secret-key")
	code, out, stderr := sgEnv(t, []string{"SYNCGUARD_BACKEND=" + backend}, "", "run", "--json", "--key", key, "--",
		"sh", "-c", `echo "backend=${SYNCGUARD_BACKEND-unset} id=$SYNCGUARD_LOCK_ID"`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(out[strings.Index(out, "id=")+3:])
	if !strings.HasPrefix(out, "backend=unset ") || len(id) != 22 {
		t.Errorf("command saw %q; want no SYNCGUARD_BACKEND and a lock ID", out)
	}
	if strings.Contains(stderr, id) || strings.Contains(stderr, key) {
		t.Errorf("--json output shows the raw lock ID or key: %s", stderr)
	}
	for _, ev := range checkJSONLines(t, "run --json", stderr) {
		if h, _ := ev["keyHash"].(string); len(h) != 24 {
			t.Errorf("event %v lacks a 24-hex keyHash", ev)
		}
		if ev["event"] == "acquired" {
			if h, _ := ev["lockIdHash"].(string); len(h) != 24 {
				t.Errorf("acquired event %v lacks a lockIdHash", ev)
			}
		}
	}
	// Text output: hashes too.
	code, out, stderr = sg(t, "run", "--backend", backend, "--key", key, "--", "sh", "-c", `echo "$SYNCGUARD_LOCK_ID"`)
	if id := strings.TrimSpace(out); code != 0 || strings.Contains(stderr, id) || strings.Contains(stderr, key) || !strings.Contains(stderr, "key hash ") {
		t.Errorf("text output: exit %d, stderr %q shows the lock ID %s or the key", code, stderr, id)
	}
	// --raw shows them.
	code, out, stderr = sg(t, "run", "--raw", "--json", "--backend", backend, "--key", key, "--", "sh", "-c", `echo "$SYNCGUARD_LOCK_ID"`)
	if id := strings.TrimSpace(out); code != 0 || !strings.Contains(stderr, `"lockId":"`+id+`"`) || !strings.Contains(stderr, `"key":"`+key+`"`) {
		t.Errorf("--raw: exit %d, stderr %q lacks the lock ID %s or the key", code, stderr, id)
	}
}

// TestReleaseSources: release takes the lock ID from standard input, from
// SYNCGUARD_LOCK_ID or by --key, never needing it on the command line; a
// positional ID still works with a deprecation warning; status --raw shows
// the ID, status without it only the hash.
func TestReleaseSources(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	// hold starts a run on key and returns its lock ID and a wait for its
	// exit code.
	hold := func(t *testing.T, key string) (string, func() int) {
		t.Helper()
		cmd := exec.Command(binary, "run", "--ttl", "900ms", "--grace", "200ms", "--backend", backend, "--key", key, "--",
			"sh", "-c", `echo "$SYNCGUARD_LOCK_ID"; exec sleep 30`)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		id, _ := bufio.NewReader(stdout).ReadString('\n')
		return strings.TrimSpace(id), func() int {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				return exitCodeOf(err)
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				return -1
			}
		}
	}
	positional := func(id, _ string) (int, string, string) { return sg(t, "release", "--backend", backend, id) }
	tests := []struct {
		name    string
		release func(id, key string) (int, string, string)
		warn    bool
		// A key in Redis slots 15872..16127, whose lock IDs once started
		// with '-' and were read as a flag (1 run in 64 of "positional"
		// failed so).
		slot15872 bool
	}{
		{"stdin", func(id, _ string) (int, string, string) {
			return sgEnv(t, nil, id+"\n", "release", "--backend", backend)
		}, false, false},
		{"stdin dash", func(id, _ string) (int, string, string) {
			return sgEnv(t, nil, id, "release", "--backend", backend, "-")
		}, false, false},
		{"env", func(id, _ string) (int, string, string) {
			return sgEnv(t, []string{"SYNCGUARD_LOCK_ID=" + id}, "", "release", "--backend", backend)
		}, false, false},
		{"key", func(_, key string) (int, string, string) { return sg(t, "release", "--backend", backend, "--key", key) }, false, false},
		{"positional", positional, true, false},
		{"positional, slot 15872", positional, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := randomKey("rel")
			if tt.slot15872 {
				key = keyInSlots(key, 15872, 16127)
			}
			id, wait := hold(t, key)
			if tt.slot15872 && !strings.HasPrefix(id, "_") {
				t.Errorf("lock ID %q of a key in slots 15872..16127; want it to start with '_'", id)
			}
			code, out, _ := sg(t, "status", "--backend", backend, key)
			if code != 0 || strings.Contains(out, id) || !strings.Contains(out, "lock ID hash ") {
				t.Errorf("status = %d %q; want the lock ID hash, not the ID %s", code, out, id)
			}
			code, out, _ = sg(t, "status", "--raw", "--json", "--backend", backend, key)
			if code != 0 || !strings.Contains(out, `"lockId":"`+id+`"`) {
				t.Errorf("status --raw --json = %d %q; want the lock ID %s", code, out, id)
			}
			code, out, stderr := tt.release(id, key)
			if code != 0 || !strings.HasPrefix(out, "released") || strings.Contains(out, id) {
				t.Errorf("release: exit %d, stdout %q, stderr %q; want released, no raw ID", code, out, stderr)
			}
			if got := strings.Contains(stderr, "deprecated"); got != tt.warn {
				t.Errorf("release stderr %q: deprecation warning %v; want %v", stderr, got, tt.warn)
			}
			if code := wait(); code != cli.ExitLost {
				t.Errorf("the run exited %d; want %d after its lock was released", code, cli.ExitLost)
			}
		})
	}
}

// keyInSlots returns key with a suffix ":<n>" that puts it in a Redis
// Cluster slot in lo..hi (CRC16/XMODEM of the key, as the Redis driver
// computes slots).
func keyInSlots(key string, lo, hi uint16) string {
	for n := 0; ; n++ {
		k := key + ":" + strconv.Itoa(n)
		var crc uint16
		for i := 0; i < len(k); i++ {
			crc ^= uint16(k[i]) << 8
			for range 8 {
				if crc&0x8000 != 0 {
					crc = crc<<1 ^ 0x1021
				} else {
					crc <<= 1
				}
			}
		}
		if s := crc & 16383; s >= lo && s <= hi {
			return k
		}
	}
}

// TestLostLockStopsProcessGroup: after a lost lock no process of the
// command's group is left when run exits 76, grandchildren included, even
// one that ignores SIGTERM (SIGKILL after --grace). A forwarded signal
// reaches the grandchild too.
func TestLostLockStopsProcessGroup(t *testing.T) {
	t.Parallel()
	backend := redisURL(t)
	tests := []struct {
		name   string
		script string
	}{
		{"grandchild", `sleep 30 & echo "$$ $! $SYNCGUARD_LOCK_ID"; wait`},
		{"grandchild ignoring TERM", `(trap "" TERM; exec sleep 30) & echo "$$ $! $SYNCGUARD_LOCK_ID"; wait`},
		{"pipeline", `echo "$$ 0 $SYNCGUARD_LOCK_ID"; sleep 30 | sleep 30`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binary, "run", "--json", "--backend", backend, "--key", randomKey("lostgroup"), "--ttl", "600ms", "--grace", "300ms", "--",
				"sh", "-c", tt.script)
			stdout, _ := cmd.StdoutPipe()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			f := strings.Fields(line)
			if len(f) != 3 {
				_ = cmd.Process.Kill()
				t.Fatalf("command printed %q", line)
			}
			pgid, _ := strconv.Atoi(f[0])
			grandchild, _ := strconv.Atoi(f[1])
			if got := processGroup(pgid); got != pgid {
				t.Errorf("the command's process group is %d; want its own (%d)", got, pgid)
			}
			if code, _, errs := sgEnv(t, nil, f[2], "release", "--backend", backend); code != 0 {
				t.Fatalf("release: %d %s", code, errs)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if code := exitCodeOf(err); code != cli.ExitLost {
					t.Errorf("exit %d; want %d (stderr %s)", code, cli.ExitLost, stderr.String())
				}
				var kinds []string
				for _, ev := range checkJSONLines(t, "run --json", stderr.String()) {
					kinds = append(kinds, fmt.Sprint(ev["event"]))
				}
				if !slices.Contains(kinds, "lost") {
					t.Errorf("events %v lack lost", kinds)
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("run did not stop within 10s of losing its lock; stderr %s", stderr.String())
			}
			if left := groupMembers(pgid); len(left) > 0 {
				t.Errorf("processes of group %d left after exit 76: %v", pgid, left)
				for _, pid := range left {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			if grandchild > 0 && alive(grandchild) {
				t.Errorf("grandchild %d still runs after exit 76", grandchild)
				_ = syscall.Kill(grandchild, syscall.SIGKILL)
			}
		})
	}
	t.Run("forwarded signal", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(binary, "run", "--backend", backend, "--key", randomKey("fwdgroup"), "--",
			"sh", "-c", `sleep 30 & echo "$!"; wait; exit 3`)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		grandchild, _ := strconv.Atoi(strings.TrimSpace(line))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		for deadline := time.Now().Add(2 * time.Second); alive(grandchild) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(grandchild) {
			t.Errorf("grandchild %d survived the forwarded SIGTERM", grandchild)
			_ = syscall.Kill(grandchild, syscall.SIGKILL)
		}
	})
}

// procStat returns the state and process group of pid from /proc.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 3 {
		return 0, 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, true
}

func processGroup(pid int) int {
	_, pg, _ := procStat(pid)
	return pg
}

// alive reports whether pid runs (exists and is not a zombie).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// groupMembers lists the live processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pg, ok := procStat(pid); ok && pg == pgid && state != 'Z' && state != 'X' {
			out = append(out, pid)
		}
	}
	return out
}

// TestRunAtTerminal: at a terminal (a pseudo-terminal from script(1)), the
// command's process group is the foreground group, so a command that reads
// the terminal is not stopped by SIGTTIN.
func TestRunAtTerminal(t *testing.T) {
	t.Parallel()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) not found (util-linux)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qec", binary+` run --backend memory:// --key k -- sh -c 'read x; echo "got=$x"'`, "/dev/null")
	cmd.Stdin = strings.NewReader("hello\n")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("run at a terminal hung (the command was stopped reading the terminal?); output %q", out)
	}
	if err != nil || !strings.Contains(string(out), "got=hello") {
		t.Errorf("run at a terminal: %v, output %q; want got=hello", err, out)
	}
}
