package semaphore_test

import (
	"context"
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/semaphore"
)

// At most two exports per tenant at a time, across every process that
// shares the backend (here the in-process driver).
func Example() {
	ctx := context.Background()
	exports, err := semaphore.New(memory.New(), 2)
	if err != nil {
		panic(err)
	}
	err = exports.Do(ctx, "exports/acme", func(ctx context.Context, l *syncguard.Lease[memory.Capabilities]) error {
		// The permit extends itself while this runs; writes made under it
		// can carry syncguard.FenceOf(l).
		n, _ := exports.Held(ctx, "exports/acme")
		fmt.Println("exports running for acme:", n)
		return nil
	})
	fmt.Println("done:", err)
	// Output:
	// exports running for acme: 1
	// done: <nil>
}
