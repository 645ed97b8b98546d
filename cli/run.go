package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/syncguard/syncguard"
)

// forwarded are the signals `syncguard run` passes on to the command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

type runConfig struct {
	backend string
	key     string
	ttl     time.Duration
	wait    time.Duration
	noWait  bool
	grace   time.Duration
	json    bool
	argv    []string
}

// envDefault returns the environment variable's value or def.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", name, err)
	}
	return d, nil
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer, conf *config) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg runConfig
	ttl, err1 := envDuration("SYNCGUARD_TTL", 30*time.Second)
	wait, err2 := envDuration("SYNCGUARD_WAIT", 0)
	grace, err3 := envDuration("SYNCGUARD_GRACE", 10*time.Second)
	if err := errors.Join(err1, err2, err3); err != nil {
		fmt.Fprintln(stderr, "syncguard run:", err)
		return exitUsage
	}
	fs.StringVar(&cfg.backend, "backend", envDefault("SYNCGUARD_BACKEND", ""), "backend URL (env SYNCGUARD_BACKEND)")
	fs.StringVar(&cfg.key, "key", envDefault("SYNCGUARD_KEY", ""), "lock key (env SYNCGUARD_KEY)")
	fs.DurationVar(&cfg.ttl, "ttl", ttl, "lock TTL; the lock is extended every TTL/3 while the command runs (env SYNCGUARD_TTL)")
	fs.DurationVar(&cfg.wait, "wait", wait, "how long to wait for a busy lock; 0 waits indefinitely (env SYNCGUARD_WAIT)")
	fs.BoolVar(&cfg.noWait, "no-wait", false, "fail at once (exit 75) if the lock is busy")
	fs.DurationVar(&cfg.grace, "grace", grace, "after a lost lock: SIGTERM, then SIGKILL after this long (env SYNCGUARD_GRACE)")
	fs.BoolVar(&cfg.json, "json", false, "print events as JSON lines on stderr")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: syncguard run --backend URL --key KEY [--ttl 30s] [--wait 5m|--no-wait] [--grace 10s] [--json] -- COMMAND [ARGS…]")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\n"+conf.backendHelp())
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg.argv = fs.Args()
	switch {
	case cfg.key == "":
		fmt.Fprintln(stderr, "syncguard run: --key is required")
		return exitUsage
	case len(cfg.argv) == 0:
		fmt.Fprintln(stderr, "syncguard run: no command given (syncguard run … -- COMMAND ARGS…)")
		return exitUsage
	case cfg.ttl < 3*time.Millisecond:
		fmt.Fprintln(stderr, "syncguard run: --ttl must be at least 3ms")
		return exitUsage
	case cfg.wait < 0 || cfg.grace < 0:
		fmt.Fprintln(stderr, "syncguard run: --wait and --grace must not be negative")
		return exitUsage
	}
	sess, err := openBackend(ctx, cfg.backend, conf)
	if err != nil {
		fmt.Fprintln(stderr, "syncguard run:", err)
		return exitUsage
	}
	defer sess.close()
	return runLocked(ctx, sess, cfg, stdout, stderr)
}

// reporter prints run's events, human-readable or as JSON lines.
type reporter struct {
	w    io.Writer
	json bool
	tty  bool
}

func (r reporter) event(kind string, fields map[string]any, human string) {
	if r.json {
		m := map[string]any{"event": kind, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		for k, v := range fields {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		fmt.Fprintln(r.w, string(b))
		return
	}
	fmt.Fprintln(r.w, "syncguard:", human)
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runLocked(ctx context.Context, sess *Session, cfg runConfig, stdout, stderr io.Writer) int {
	rep := reporter{w: stderr, json: cfg.json, tty: isTTY(stderr)}
	opts := []syncguard.AcquireOption{syncguard.TTL(cfg.ttl), syncguard.AutoExtend(true)}
	if !cfg.noWait {
		wait := cfg.wait
		if wait == 0 {
			wait = 100 * 365 * 24 * time.Hour
		}
		opts = append(opts, syncguard.Timeout(wait), syncguard.MaxRetries(1<<30),
			syncguard.RetryDelay(100*time.Millisecond))
	}
	// SIGINT/SIGTERM interrupt the wait for the lock. The lease's context
	// derives from the acquisition's, so that context must stay alive after
	// the acquisition: only the signal watch ends then.
	// Once acquired, the lease (and its heartbeat) must outlive ctx, which
	// main cancels on SIGINT/SIGTERM: those are forwarded to the command,
	// and the lock is held until the command exits.
	actx, interrupt := context.WithCancel(context.WithoutCancel(ctx))
	defer interrupt()
	waitSigs := make(chan os.Signal, 1)
	signal.Notify(waitSigs, syscall.SIGINT, syscall.SIGTERM)
	acquired := make(chan struct{})
	go func() {
		select {
		case <-waitSigs:
			interrupt()
		case <-ctx.Done():
			interrupt()
		case <-acquired:
		}
	}()
	stopSpinner := func() {}
	if !cfg.noWait {
		stopSpinner = rep.waiting(cfg.key)
	}
	h, err := sess.guard(actx, cfg.key, opts, cfg.noWait)
	stopSpinner()
	signal.Stop(waitSigs)
	close(acquired)
	switch {
	case errors.Is(err, syncguard.ErrLocked):
		rep.event("busy", map[string]any{"key": cfg.key}, fmt.Sprintf("lock %q is busy", cfg.key))
		return exitBusy
	case syncguard.CodeOf(err) == syncguard.InvalidArgument:
		fmt.Fprintln(stderr, "syncguard run:", err)
		return exitUsage
	case syncguard.CodeOf(err) == syncguard.Aborted:
		rep.event("aborted", map[string]any{"key": cfg.key}, "interrupted while waiting for the lock")
		return 130
	case err != nil:
		rep.event("error", map[string]any{"key": cfg.key, "error": err.Error(), "code": syncguard.CodeOf(err).String()},
			fmt.Sprintf("backend error: %v", err))
		return exitUnavailable
	}
	rep.event("acquired", map[string]any{"key": cfg.key, "lockId": h.lockID, "fence": h.fence.String(), "backend": sess.name},
		fmt.Sprintf("acquired %q (fence %s) on %s", cfg.key, h.fence, sess.name))

	code, lost := execUnderLock(cfg, h, stdout, stderr)

	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	relErr := h.release(rctx)
	cancel()
	if lost {
		rep.event("lost", map[string]any{"key": cfg.key, "lockId": h.lockID, "reason": errString(h.lostErr())},
			fmt.Sprintf("lock %q was lost while the command ran (%v); the command was stopped", cfg.key, h.lostErr()))
		return exitLost
	}
	if relErr != nil {
		rep.event("release-error", map[string]any{"key": cfg.key, "error": relErr.Error()}, fmt.Sprintf("release: %v", relErr))
	} else {
		rep.event("released", map[string]any{"key": cfg.key, "exitCode": code}, fmt.Sprintf("released %q", cfg.key))
	}
	return code
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// waiting shows that run waits for the lock: a spinner line on a TTY, one
// plain line otherwise. The returned function ends it.
func (r reporter) waiting(key string) func() {
	if r.json {
		return func() {}
	}
	if !r.tty {
		done := make(chan struct{})
		t := time.AfterFunc(500*time.Millisecond, func() {
			select {
			case <-done:
			default:
				fmt.Fprintf(r.w, "syncguard: waiting for lock %q…\n", key)
			}
		})
		return func() { close(done); t.Stop() }
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		frames := `|/-\`
		start := time.Now()
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				fmt.Fprint(r.w, "\r\033[K")
				return
			case <-tick.C:
				if time.Since(start) > 300*time.Millisecond {
					fmt.Fprintf(r.w, "\r%c waiting for lock %q (%s)", frames[i%4], key, time.Since(start).Round(time.Second))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// execUnderLock runs the command with SYNCGUARD_FENCE and
// SYNCGUARD_LOCK_ID in its environment, forwards signals to it, and stops
// it (SIGTERM, then SIGKILL after the grace period) if the lock is lost.
// It returns the command's exit code (128+signal if a signal ended it) and
// whether the lock was lost.
func execUnderLock(cfg runConfig, h held, stdout, stderr io.Writer) (code int, lost bool) {
	cmd := exec.Command(cfg.argv[0], cfg.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(),
		"SYNCGUARD_FENCE="+h.fence.String(),
		"SYNCGUARD_LOCK_ID="+h.lockID,
		"SYNCGUARD_KEY="+cfg.key,
	)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "syncguard run:", err)
		return exitNoCommand, false
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var kill <-chan time.Time
	for {
		select {
		case err := <-exited:
			return exitCodeOf(err), lost
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case <-h.lost:
			h.lost = nil
			lost = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			kill = time.After(cfg.grace)
		case <-kill:
			_ = cmd.Process.Kill()
		}
	}
}

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
	return exitFailure
}

// openAdmin parses the flags of the status and release commands
// (--backend, --json and one positional argument named argName) and opens
// the backend. A nil session means the command is over with exit code
// code.
func openAdmin(ctx context.Context, name, argName string, args []string, stderr io.Writer, conf *config) (sess *Session, arg string, asJSON bool, code int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", envDefault("SYNCGUARD_BACKEND", ""), "backend URL (env SYNCGUARD_BACKEND)")
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return nil, "", false, exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "Usage: syncguard %s --backend URL [--json] %s\n", name, argName)
		return nil, "", false, exitUsage
	}
	sess, err := openBackend(ctx, *backend, conf)
	if err != nil {
		fmt.Fprintf(stderr, "syncguard %s: %v\n", name, err)
		return nil, "", false, exitUsage
	}
	return sess, fs.Arg(0), *jsonOut, exitOK
}

// backendFailure reports a failed backend call of command name and
// returns its exit code: usage for InvalidArgument, else unavailable.
func backendFailure(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "syncguard %s: %v\n", name, err)
	if syncguard.CodeOf(err) == syncguard.InvalidArgument {
		return exitUsage
	}
	return exitUnavailable
}

// statusCommand prints the state of a key.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer, conf *config) int {
	sess, key, asJSON, code := openAdmin(ctx, "status", "KEY", args, stderr, conf)
	if sess == nil {
		return code
	}
	defer sess.close()
	info, err := syncguard.GetByKey(ctx, sess.backend, key)
	if err != nil {
		return backendFailure(stderr, "status", err)
	}
	if asJSON {
		out := map[string]any{"key": key, "locked": info != nil}
		if info != nil {
			out["fence"] = info.Fence.String()
			out["expiresAtMs"] = info.ExpiresAtMs
			out["acquiredAtMs"] = info.AcquiredAtMs
			out["lockIdHash"] = info.LockIDHash
			out["keyHash"] = info.KeyHash
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	if info == nil {
		fmt.Fprintf(stdout, "%s: free\n", key)
		return exitOK
	}
	left := time.Until(time.UnixMilli(info.ExpiresAtMs)).Round(time.Millisecond)
	fmt.Fprintf(stdout, "%s: locked, fence %s, expires in %s (lock ID hash %s)\n", key, info.Fence, left, info.LockIDHash)
	return exitOK
}

// releaseCommand releases a lock by its ID (an administrator's tool).
func releaseCommand(ctx context.Context, args []string, stdout, stderr io.Writer, conf *config) int {
	sess, id, asJSON, code := openAdmin(ctx, "release", "LOCK_ID", args, stderr, conf)
	if sess == nil {
		return code
	}
	defer sess.close()
	r, err := sess.backend.Release(ctx, id)
	if err != nil {
		return backendFailure(stderr, "release", err)
	}
	if asJSON {
		b, _ := json.Marshal(map[string]any{"lockId": id, "released": r.OK, "detail": r.Detail})
		fmt.Fprintln(stdout, string(b))
	} else if r.OK {
		fmt.Fprintf(stdout, "released %s\n", id)
	} else {
		fmt.Fprintf(stdout, "not released: %s\n", r.Detail)
	}
	if !r.OK {
		return exitFailure
	}
	return exitOK
}
