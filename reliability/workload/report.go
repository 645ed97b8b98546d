package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// reporter counts a run's calls by outcome and keeps its first problems:
// unmapped errors (not a *syncguard.LockError), InvalidArgument and
// Internal, which a workload of valid input must never see. It is safe
// for concurrent use.
type reporter struct {
	counts   *Counts
	mu       sync.Mutex
	problems []string // at most 20
}

func newReporter(counts *Counts) *reporter { return &reporter{counts: counts} }

// check counts the call op of client and reports err if it is a problem.
func (r *reporter) check(client int, op string, err error) {
	r.counts.add(err)
	if err == nil {
		return
	}
	if code := driver.CodeOf(err); code == 0 || code == driver.InvalidArgument || code == driver.Internal {
		r.problemf("client %d: %s: %v (code %v, %T)", client, op, err, code, err)
	}
}

// problemf reports a problem.
func (r *reporter) problemf(format string, args ...any) {
	r.mu.Lock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
	r.mu.Unlock()
}

// list returns the problems reported so far.
func (r *reporter) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// runClients runs n clients with IDs base, base+1, …: newClient gets each
// ID and its own random source (seeded by seed and the ID) and returns the
// client's round, which runs until ctx ends, d has passed (0: no bound) or
// the client made ops rounds (0: no bound); pause, if not nil, runs before
// each round. It returns when every client has.
func runClients(ctx context.Context, n, base int, seed uint64, ops int, d time.Duration, pause func(), newClient func(id int, rng *rand.Rand) (round func(context.Context))) {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		id := base + i
		wg.Go(func() {
			round := newClient(id, rand.New(rand.NewPCG(seed, uint64(id)+1)))
			for k := 0; ops == 0 || k < ops; k++ {
				if ctx.Err() != nil || (d > 0 && time.Now().After(deadline)) {
					return
				}
				if pause != nil {
					pause()
				}
				round(ctx)
			}
		})
	}
	wg.Wait()
}
