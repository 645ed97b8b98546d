#!/bin/sh
# Runs cmd/compare with the cirello.io/pglock adapter (pglock_adapter.go,
# -tags pglock) without touching benchmarks/go.mod.
#
# The Go module proxy refuses cirello.io/pglock (403), so its source must
# already be in $PGLOCK_SRC (default /tmp/pglock-src: a module whose go.mod
# says "module cirello.io/pglock"); this script does not fetch it. It writes
# $PGLOCK_SRC/bench.mod and bench.sum, copies of go.mod and go.sum that
# require cirello.io/pglock v0.0.0 and replace it (and the SyncGuard module)
# by local directories, and runs
#
#	go run -modfile=$PGLOCK_SRC/bench.mod -tags pglock ./cmd/compare ARGS
#
# ARGS default to: -rounds 1 -only syncguard-postgres,pglock,pg-advisory
# -scenarios serial,parallel,contended
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
src=${PGLOCK_SRC:-/tmp/pglock-src}

if [ ! -f "$src/go.mod" ] || ! grep -q '^module cirello.io/pglock$' "$src/go.mod"; then
	echo "pglock.sh: no cirello.io/pglock source in $src (set PGLOCK_SRC)." >&2
	echo "The module proxy refuses cirello.io/pglock; put its source there first" >&2
	echo "(a directory with its go.mod and .go files), then run this again." >&2
	exit 1
fi
src=$(cd "$src" && pwd)

cp "$here/go.mod" "$src/bench.mod"
cp "$here/go.sum" "$src/bench.sum"
cd "$here"
go mod edit -modfile="$src/bench.mod" \
	-require=cirello.io/pglock@v0.0.0 \
	-replace=cirello.io/pglock="$src" \
	-replace=github.com/syncguard/syncguard="$root"
# Adds what the tagged file needs (lib/pq, pglock's own requirements) to
# bench.mod and bench.sum; go.mod and go.sum are not touched.
go mod tidy -modfile="$src/bench.mod"

if [ $# -eq 0 ]; then
	set -- -rounds 1 -only syncguard-postgres,pglock,pg-advisory -scenarios serial,parallel,contended
fi
go vet -modfile="$src/bench.mod" -tags pglock ./...
exec go run -modfile="$src/bench.mod" -tags pglock ./cmd/compare "$@"
