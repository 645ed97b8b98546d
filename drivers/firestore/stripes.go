package firestore

import (
	"context"
	"hash/maphash"

	"github.com/syncguard/syncguard/driver"
)

// numStripes is the number of local serialisation stripes per driver.
const numStripes = 256

// stripes serialises this process's transactions on one document.
//
// Firestore transactions lock pessimistically: transactions that read the
// same document and then write it wait on each other's read locks until
// one times out (the emulator holds a conflicting transaction for up to
// 2 s), and the SDK retries with a backoff that starts at one second. A
// burst of goroutines contending for one key in one process would spend
// seconds in that dance, long enough to outlive short TTLs. The driver
// therefore lets one transaction per document (per stripe) and process run
// at a time; contention between processes is still resolved by Firestore.
// Waiting for a stripe honours the context.
type stripes struct {
	seed maphash.Seed
	sem  [numStripes]chan struct{}
}

func newStripes() *stripes {
	s := &stripes{seed: maphash.MakeSeed()}
	for i := range s.sem {
		s.sem[i] = make(chan struct{}, 1)
	}
	return s
}

// lock takes the stripe of doc (a collection-qualified ID) and returns its
// unlock function.
func (s *stripes) lock(ctx context.Context, doc string) (func(), error) {
	ch := s.sem[maphash.String(s.seed, doc)%numStripes]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, driver.ContextError(ctx.Err())
	}
}
