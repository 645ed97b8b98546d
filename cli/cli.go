// Package cli implements the syncguard command (cmd/syncguard). It is a
// library so that a binary can add backends the core module cannot import:
// the Firestore driver's module builds a syncguard with firestore:// this
// way (drivers/firestore/cmd/syncguard).
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		defer stop()
//		os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr,
//			cli.WithBackend("mystore", openMyStore, "mystore://…   my backend")))
//	}
package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/semaphore"
)

// Exit codes of the command. `syncguard run` otherwise exits with its
// command's own code (128+N if signal N ended it).
const (
	ExitOK          = 0   // success
	ExitFailure     = 1   // the operation did not succeed (e.g. release found no lock)
	ExitUsage       = 2   // wrong usage only: bad flags, key or TTL, or a URL that cannot work
	ExitDoubleCh    = 3   // the locked demo run charged a payment twice
	ExitUnavailable = 69  // the backend cannot be used: unreachable, credentials refused, database missing, or an operation failed (EX_UNAVAILABLE)
	ExitBusy        = 75  // run: the lock is busy (--no-wait, or --wait ran out)
	ExitLost        = 76  // run: the lock was lost while the command ran; its process group was stopped
	ExitNoCommand   = 127 // run: the command could not be started
)

const (
	exitOK          = ExitOK
	exitFailure     = ExitFailure
	exitUsage       = ExitUsage
	exitDoubleCh    = ExitDoubleCh
	exitUnavailable = ExitUnavailable
	exitBusy        = ExitBusy
	exitLost        = ExitLost
	exitNoCommand   = ExitNoCommand
)

// Opener opens a backend named by a URL of its scheme. An error whose
// [driver.CodeOf] is InvalidArgument is reported as wrong usage (exit
// 2: the URL cannot work); any other error as an unavailable backend (exit
// 69). The command masks the URL's password in every message it prints.
type Opener func(ctx context.Context, u *url.URL) (*Session, error)

// Session is an open backend. Build it with [NewSession].
type Session struct {
	name    string
	backend driver.LockStore
	close   func()
	// newGuard builds a Guard over backend: the session chooses its
	// driver at run time, so every Guard has the one type Guard[Fenced].
	newGuard func(opts ...syncguard.Option) *syncguard.Guard[syncguard.Fenced]
	// acquirePermit takes one of n permits of key (semaphore package),
	// once when try is set.
	acquirePermit func(ctx context.Context, key string, n int, opts []syncguard.AcquireOption, try bool, gopts []syncguard.Option) (held, error)
}

// NewSession wraps driver d for the command; close releases what the
// opener created (clients, pools) and is called once when the command is
// done with the backend.
func NewSession[C driver.Fenced](name string, d driver.Driver[C], close func()) *Session {
	if close == nil {
		close = func() {}
	}
	return &Session{name: name, backend: d, close: close,
		newGuard: func(opts ...syncguard.Option) *syncguard.Guard[syncguard.Fenced] {
			return syncguard.NewFenced(d, opts...)
		},
		acquirePermit: func(ctx context.Context, key string, n int, opts []syncguard.AcquireOption, try bool, gopts []syncguard.Option) (held, error) {
			s, err := semaphore.New(d, n, gopts...)
			if err != nil {
				return held{}, err
			}
			return take(ctx, s, key, opts, try)
		},
	}
}

// Option configures [Main].
type Option func(*config)

type config struct {
	backends map[string]Opener
	help     []string
	stdin    io.Reader // release reads the lock ID here
}

// WithBackend adds (or replaces) the backend of a URL scheme; help is a
// line for the usage text.
func WithBackend(scheme string, open Opener, help string) Option {
	return func(c *config) {
		c.backends[scheme] = open
		if help != "" {
			c.help = append(c.help, "  "+help)
		}
	}
}

func newConfig(opts []Option) *config {
	c := &config{backends: map[string]Opener{}, stdin: os.Stdin}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// Main runs the command with args (without the program name) and returns
// its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...Option) int {
	return run(ctx, args, stdout, stderr, newConfig(opts))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, cfg *config) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return demoCommand(ctx, args[1:], stdout, stderr)
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr, cfg)
	case "status":
		return statusCommand(ctx, args[1:], stdout, stderr, cfg)
	case "release":
		return releaseCommand(ctx, args[1:], cfg.stdin, stdout, stderr, cfg)
	case "version", "-version", "--version":
		return versionCommand(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		if flagGiven(args, "json") {
			newPrinter("", stderr, args).fail(usageError("unknown command %q: run, status, release, demo or version", args[0]))
			return exitUsage
		}
		fmt.Fprintf(stderr, "syncguard: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `syncguard — distributed locks for Go services

Usage:
  syncguard run [--backend URL] --key KEY [--permits N] [--ttl 30s] [--wait 5m|--no-wait] [--grace 10s] [--json] [--quiet] [--raw] -- COMMAND [ARGS…]
      Run COMMAND (in its own process group) while holding KEY (a
      distributed flock). Exit codes: the command's own; 75 busy; 76 lock
      lost (command group stopped); 69 backend unreachable, credentials
      refused or database missing; 2 usage.
  syncguard status [--backend URL] [--json] [--raw] KEY
      Show whether KEY is locked, its fence and expiry.
  syncguard release [--backend URL] [--json] [--raw] [--key KEY]
      Release the lock of KEY, or the lock whose ID is in SYNCGUARD_LOCK_ID
      or on standard input (administrators; exit 1 if not released).
  syncguard demo [-workers N] [-payments N] [-work DURATION]
      Race N workers over the same payments without and with a lock
      (in-process memory driver, no server needed). Exits 0 only if the
      locked run charged no payment twice.
  syncguard version
      Print the version.

The backend URL comes from --backend or SYNCGUARD_BACKEND (which keeps a
password out of the process list). Output shows hashes of keys and lock
IDs unless --raw is given. "syncguard COMMAND --help" shows a command's
flags.
`)
}

const versionUsage = `Usage: syncguard version

Print the version of syncguard.
`

func versionCommand(args []string, stdout, stderr io.Writer) int {
	p := newPrinter("version", stderr, args)
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	var jsonOut bool
	fs.BoolVar(&jsonOut, "json", false, "print the version as JSON")
	if code, done := parseFlags(fs, args, versionUsage, stdout, p); done {
		return code
	}
	if fs.NArg() != 0 {
		return p.fail(usageError("version takes no arguments"))
	}
	if jsonOut {
		b, _ := json.Marshal(map[string]string{"version": version()})
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintln(stdout, "syncguard", version())
	return exitOK
}
