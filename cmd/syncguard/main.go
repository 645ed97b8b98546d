// Command syncguard is SyncGuard's command-line tool.
//
// Usage:
//
//	syncguard demo [-workers N] [-payments N] [-work D]
//	syncguard version
//
// The demo runs on the in-process memory driver and needs no server: N
// workers race to process the same payments, first without a lock and then
// with SyncGuard, and it prints how many payments were charged twice in each
// run. It exits 0 only if the locked run charged no payment twice.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitDoubleCh = 3 // the locked demo run charged a payment twice
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "demo":
		return demoCommand(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "syncguard", version())
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "syncguard: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `syncguard — distributed locks for Go services

Usage:
  syncguard demo [-workers N] [-payments N] [-work DURATION]
      Race N workers over the same payments without and with a lock
      (in-process memory driver, no server needed). Exits 0 only if the
      locked run charged no payment twice.
  syncguard version
      Print the version.
`)
}
