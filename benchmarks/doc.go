// Package benchmarks measures SyncGuard side by side with the Go lock
// libraries it competes with, against the same local Redis and PostgreSQL
// servers, in one process and one run.
//
// It is its own Go module (github.com/syncguard/syncguard/benchmarks, with
// a replace directive to the root module), so the peer libraries never
// enter SyncGuard's go.mod.
//
// Every library is reduced to a [Locker]: Lock (wait until acquired),
// TryLock (one attempt), each returning an unlock function. The scenarios
// ([Serial], [Parallel], [Contended]) run any Locker; the Benchmark
// functions in bench_test.go and the compare command (cmd/compare) drive
// them. Servers come from the environment:
//
//	SYNCGUARD_BENCH_REDIS     Redis address (default 127.0.0.1:6379)
//	SYNCGUARD_BENCH_POSTGRES  PostgreSQL URL (default postgres://postgres@127.0.0.1:5432/test)
//
// Server command counts come from INFO commandstats deltas, which count
// every command the server ran, including those a Lua script calls; run
// against a Redis nobody else uses (the compare command's -redis flag) or
// the counts include other clients' commands.
package benchmarks
