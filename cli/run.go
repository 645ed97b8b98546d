package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// forwarded are the signals `syncguard run` passes on to the command's
// process group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// backendEnv is the environment variable that names the backend. It may
// hold a password, so the command run under the lock does not inherit it.
const backendEnv = "SYNCGUARD_BACKEND"

type runConfig struct {
	backend string
	key     string
	ttl     time.Duration
	wait    time.Duration
	noWait  bool
	grace   time.Duration
	permits int
	raw     bool
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

const runUsage = `Usage: syncguard run [--backend URL] --key KEY [--permits N] [--ttl 30s] [--wait 5m|--no-wait] [--grace 10s] [--json] [--quiet] [--raw] -- COMMAND [ARGS…]

Run COMMAND while holding the lock KEY (a distributed flock), extending the
lock every TTL/3, and release it when COMMAND exits. With --permits N, hold
one of N permits of KEY instead: at most N commands run at once.

Arguments:
  COMMAND [ARGS…]  the command to run under the lock, after "--". It runs in
                   its own process group; signals (forwarded, or SIGTERM and
                   SIGKILL after a lost lock) go to the whole group. It gets
                   SYNCGUARD_FENCE, SYNCGUARD_LOCK_ID and SYNCGUARD_KEY, and
                   not SYNCGUARD_BACKEND.

Exit codes: COMMAND's own (128+N if signal N ended it); 75 busy; 76 lock
lost (COMMAND stopped); 69 backend unreachable, credentials refused or
database missing; 127 COMMAND could not be started; 130 interrupted while
waiting; 2 usage.
`

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer, conf *config) int {
	p := newPrinter("run", stderr, args)
	p.secretURL(os.Getenv(backendEnv))
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cfg runConfig
	var jsonOut, quiet bool
	ttl, err1 := envDuration("SYNCGUARD_TTL", 30*time.Second)
	wait, err2 := envDuration("SYNCGUARD_WAIT", 0)
	grace, err3 := envDuration("SYNCGUARD_GRACE", 10*time.Second)
	fs.StringVar(&cfg.backend, "backend", envDefault(backendEnv, ""), "backend URL (env SYNCGUARD_BACKEND; the environment keeps a password out of the process list)")
	fs.StringVar(&cfg.key, "key", envDefault("SYNCGUARD_KEY", ""), "lock key (env SYNCGUARD_KEY)")
	fs.DurationVar(&cfg.ttl, "ttl", ttl, "lock TTL; the lock is extended every TTL/3 while the command runs (env SYNCGUARD_TTL)")
	fs.DurationVar(&cfg.wait, "wait", wait, "how long to wait for a busy lock; 0 waits indefinitely (env SYNCGUARD_WAIT)")
	fs.BoolVar(&cfg.noWait, "no-wait", false, "fail at once (exit 75) if the lock is busy")
	fs.IntVar(&cfg.permits, "permits", 1, "run while holding one of N permits of KEY (a distributed semaphore: at most N commands at once); 1 is the lock")
	fs.DurationVar(&cfg.grace, "grace", grace, "after a lost lock: SIGTERM to the command's group, then SIGKILL after this long (env SYNCGUARD_GRACE)")
	fs.BoolVar(&jsonOut, "json", false, "print events and errors as JSON lines on stderr")
	fs.BoolVar(&quiet, "quiet", false, "print only errors and a lost lock (no acquired, released, busy or waiting lines)")
	fs.BoolVar(&cfg.raw, "raw", false, "print the key and lock ID themselves, not their hashes (whoever reads the lock ID can release the lock)")
	if code, done := parseFlags(fs, args, runUsage+"\n"+conf.backendHelp()+"\n", stdout, p); done {
		return code
	}
	p.json, p.quiet = jsonOut, quiet // as parsed (the pre-scan saw arguments of the command too)
	p.secretURL(cfg.backend)
	if err := errors.Join(err1, err2, err3); err != nil {
		return p.fail(usageError("%v", err))
	}
	cfg.argv = fs.Args()
	switch {
	case cfg.key == "":
		return p.fail(usageError("--key is required"))
	case len(cfg.argv) == 0:
		return p.fail(usageError("no command given (syncguard run … -- COMMAND ARGS…)"))
	case cfg.ttl < 3*time.Millisecond:
		return p.fail(usageError("--ttl must be at least 3ms"))
	case cfg.wait < 0 || cfg.grace < 0:
		return p.fail(usageError("--wait and --grace must not be negative"))
	case cfg.permits < 1 || cfg.permits > driver.MaxPermits:
		return p.fail(usageError("--permits must be between 1 and %d", driver.MaxPermits))
	}
	if _, err := driver.NormalizeKey(cfg.key); err != nil {
		return p.fail(usageError("--key: %v", err))
	}
	sess, err := openBackend(ctx, cfg.backend, conf, p.logger())
	if err != nil {
		return p.fail(err)
	}
	defer sess.close()
	return runLocked(ctx, sess, cfg, p, stdout, stderr)
}

// keyFields are the fields naming key in an event: its hash, and the key
// itself with --raw.
func keyFields(key string, raw bool) map[string]any {
	m := map[string]any{"keyHash": driver.HashKey(key)}
	if raw {
		m["key"] = key
	}
	return m
}

// keyText names key in a text line.
func keyText(key string, raw bool) string {
	if raw {
		return fmt.Sprintf("%q", key)
	}
	return "key hash " + driver.HashKey(key)
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func runLocked(ctx context.Context, sess *Session, cfg runConfig, p *printer, stdout, stderr io.Writer) int {
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
	if !cfg.noWait && !p.quiet && !p.json {
		stopSpinner = waiting(stderr, isTTY(stderr), keyText(cfg.key, cfg.raw))
	}
	h, err := sess.acquire(actx, cfg.key, cfg.permits, opts, cfg.noWait, p.logger())
	stopSpinner()
	signal.Stop(waitSigs)
	close(acquired)
	kf := keyFields(cfg.key, cfg.raw)
	switch {
	case errors.Is(err, syncguard.ErrLocked):
		msg := fmt.Sprintf("lock %s is busy", keyText(cfg.key, cfg.raw))
		if cfg.permits > 1 {
			msg = fmt.Sprintf("all %d permits of %s are held", cfg.permits, keyText(cfg.key, cfg.raw))
		}
		p.info("busy", kf, msg)
		return exitBusy
	case driver.CodeOf(err) == driver.Aborted:
		p.info("aborted", kf, "interrupted while waiting for the lock")
		return 130
	case err != nil:
		return p.fail(fmt.Errorf("backend %s: %w", sess.name, err))
	}
	if !cfg.raw {
		p.hideID(h.lockID)
	}
	ev := keyFields(cfg.key, cfg.raw)
	ev["lockIdHash"], ev["fence"], ev["backend"] = driver.HashKey(h.lockID), h.fence.String(), sess.name
	if cfg.raw {
		ev["lockId"] = h.lockID
	}
	p.info("acquired", ev, fmt.Sprintf("acquired %s (fence %s) on %s", keyText(cfg.key, cfg.raw), h.fence, sess.name))

	code, lost, left := execUnderLock(cfg, h, p, stdout, stderr)

	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	relErr := h.release(rctx)
	cancel()
	if lost {
		ev := keyFields(cfg.key, cfg.raw)
		ev["lockIdHash"], ev["reason"] = driver.HashKey(h.lockID), errString(h.lostErr())
		if left > 0 {
			ev["processesLeft"] = left
		}
		p.line("lost", ev, fmt.Sprintf("lock %s was lost while the command ran (%v); the command's process group was stopped",
			keyText(cfg.key, cfg.raw), h.lostErr()))
		return exitLost
	}
	if relErr != nil {
		ev := keyFields(cfg.key, cfg.raw)
		ev["error"], ev["exitCode"] = relErr.Error(), code
		p.line("release-error", ev, fmt.Sprintf("release: %v", relErr))
	} else {
		ev := keyFields(cfg.key, cfg.raw)
		ev["exitCode"] = code
		p.info("released", ev, fmt.Sprintf("released %s", keyText(cfg.key, cfg.raw)))
	}
	return code
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// waiting shows that run waits for the lock named what: a spinner line on a
// TTY, one plain line otherwise. The returned function ends it.
func waiting(w io.Writer, tty bool, what string) func() {
	if !tty {
		done := make(chan struct{})
		t := time.AfterFunc(500*time.Millisecond, func() {
			select {
			case <-done:
			default:
				fmt.Fprintf(w, "syncguard run: waiting for lock %s…\n", what)
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
				fmt.Fprint(w, "\r\033[K")
				return
			case <-tick.C:
				if time.Since(start) > 300*time.Millisecond {
					fmt.Fprintf(w, "\r%c waiting for lock %s (%s)", frames[i%4], what, time.Since(start).Round(time.Second))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// childEnv is the environment of the command: ours without the backend URL
// (it may carry a password) and the variables run sets, plus the lock's.
func childEnv(environ []string, h held, key string) []string {
	env := make([]string, 0, len(environ)+3)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case backendEnv, "SYNCGUARD_FENCE", "SYNCGUARD_LOCK_ID", "SYNCGUARD_KEY":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"SYNCGUARD_FENCE="+h.fence.String(),
		"SYNCGUARD_LOCK_ID="+h.lockID,
		"SYNCGUARD_KEY="+key,
	)
}

// execUnderLock runs the command in a process group of its own, with the
// lock's variables in its environment, forwards signals to the group, and
// stops the group (SIGTERM, then SIGKILL after the grace period) if the
// lock is lost. After a lost lock it returns only once no process of the
// group is left (or, if one cannot be killed, after the grace period and
// one second more; left counts them then). It returns the command's exit
// code (128+signal if a signal ended it) and whether the lock was lost.
func execUnderLock(cfg runConfig, h held, p *printer, stdout, stderr io.Writer) (code int, lost bool, left int) {
	cmd := exec.Command(cfg.argv[0], cfg.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = childEnv(os.Environ(), h, cfg.key)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// At a terminal, the command's group becomes the foreground group (so
	// that it can read the terminal and gets Ctrl-C itself); syncguard
	// takes the terminal back when it exits.
	ttyFD, foreground := foregroundTTY()
	if foreground {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = ttyFD
		defer reclaimTTY(ttyFD)
	}
	// A process of the group that keeps the command's output pipe open
	// (when stdout is not a file) must not hold up Wait for ever.
	cmd.WaitDelay = cfg.grace + time.Second
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		p.fail(&cliError{code: exitNoCommand, msg: err.Error()})
		return exitNoCommand, false, 0
	}
	pgid := cmd.Process.Pid
	group := func(s syscall.Signal) { _ = syscall.Kill(-pgid, s) }
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var kill <-chan time.Time
	for {
		select {
		case err := <-exited:
			code = exitCodeOf(err)
			if lost {
				left = drainGroup(pgid, kill, cfg.grace)
			}
			return code, lost, left
		case s := <-sigs:
			if sig, ok := s.(syscall.Signal); ok {
				group(sig)
			}
		case <-h.lost:
			h.lost = nil
			lost = true
			group(syscall.SIGTERM)
			group(syscall.SIGCONT) // a stopped group must see the SIGTERM
			kill = time.After(cfg.grace)
		case <-kill:
			kill = nil
			group(syscall.SIGKILL)
		}
	}
}

// foregroundTTY returns standard input's descriptor when it is a terminal
// whose foreground process group is syncguard's.
func foregroundTTY() (int, bool) {
	fd := int(os.Stdin.Fd())
	var pgrp int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
		return 0, false
	}
	return fd, int(pgrp) == syscall.Getpgrp()
}

// reclaimTTY makes syncguard's process group the terminal's foreground
// group again. A background process that does so gets SIGTTOU unless it
// ignores it; the command has been started already, so ignoring it from
// now on changes nothing for the command.
func reclaimTTY(fd int) {
	signal.Ignore(syscall.SIGTTOU)
	pgrp := int32(syscall.Getpgrp())
	_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&pgrp)))
}

// drainGroup waits until process group pgid is empty, sending SIGKILL when
// kill fires (or at once if it already has); it gives up a second after
// that and returns the number of processes left.
func drainGroup(pgid int, kill <-chan time.Time, grace time.Duration) int {
	if kill == nil {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	var deadline <-chan time.Time
	if kill == nil {
		deadline = time.After(time.Second)
	} else {
		deadline = time.After(grace + time.Second)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := groupSize(pgid)
		if n == 0 {
			return 0
		}
		select {
		case <-kill:
			kill = nil
			syscall.Kill(-pgid, syscall.SIGKILL)
			deadline = time.After(time.Second)
		case <-deadline:
			return n
		case <-tick.C:
		}
	}
}

// groupSize counts the live (not zombie) processes of group pgid. Where
// /proc is missing it falls back to kill(-pgid, 0), which counts zombies.
func groupSize(pgid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		if syscall.Kill(-pgid, 0) == nil {
			return 1
		}
		return 0
	}
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if pg, state, ok := procGroup(e.Name()); ok && pg == pgid && state != 'Z' && state != 'X' {
			n++
		}
	}
	return n
}

// procGroup reads the process group and state of process pid from
// /proc/PID/stat.
func procGroup(pid string) (pgid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp …; comm may contain spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	if _, err := fmt.Sscan(f[2], &pgid); err != nil {
		return 0, 0, false
	}
	return pgid, f[0][0], true
}

func exitCodeOf(err error) int {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: the command exited 0, and a process it left
		// behind held its output open past WaitDelay.
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
