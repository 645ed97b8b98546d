// Command syncguard is SyncGuard's command-line tool.
//
// Usage:
//
//	syncguard run [--backend URL] --key KEY [--permits N] [--ttl 30s] [--wait 5m|--no-wait] [--grace 10s] [--json] [--quiet] [--raw] -- COMMAND [ARGS…]
//	syncguard status [--backend URL] [--json] [--raw] KEY
//	syncguard release [--backend URL] [--json] [--raw] [--key KEY]   (lock ID on stdin or in SYNCGUARD_LOCK_ID)
//	syncguard demo [-workers N] [-payments N] [-work D]
//	syncguard version
//
// run is a distributed flock for cron jobs and deploy scripts: it acquires
// KEY, keeps the lock alive while COMMAND runs in a process group of its own
// (exporting SYNCGUARD_FENCE, SYNCGUARD_LOCK_ID and SYNCGUARD_KEY to it, and
// not SYNCGUARD_BACKEND), forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1
// and SIGUSR2 to that group, releases the lock when COMMAND exits and exits
// with COMMAND's exit code (128+N if signal N ended it). Its own exit codes:
// 75 the lock is busy (--no-wait, or --wait ran out), 76 the lock was lost
// while COMMAND ran (the group got SIGTERM, and SIGKILL after --grace), 69
// the backend cannot be used (unreachable, credentials refused, database
// missing), 2 usage, 127 COMMAND could not be started, 130 interrupted while
// waiting. Flags also come from SYNCGUARD_BACKEND, SYNCGUARD_KEY,
// SYNCGUARD_TTL, SYNCGUARD_WAIT and SYNCGUARD_GRACE. Output shows hashes of
// keys and lock IDs unless --raw is given, and never the URL's password.
//
// The demo runs on the in-process memory driver and needs no server: N
// workers race to process the same payments, first without a lock and then
// with SyncGuard, and it prints how many payments were charged twice in each
// run. It exits 0 only if the locked run charged no payment twice.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/syncguard/syncguard/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
