package syncguard_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// A holder whose lease was taken over cannot overwrite the newer holder's
// write: the store compares fences and refuses the stale one.
func ExampleFencedWriter() {
	ctx := context.Background()
	g := syncguard.New(memory.New())
	w, err := syncguard.NewFencedWriter(g)
	if err != nil {
		fmt.Println(err)
		return
	}

	a, _ := g.TryAcquire(ctx, "doc:1")
	// Pretend A's lease expired while A was paused: the lock is free and
	// B takes it, with a newer fence. A still holds its stale lease.
	_, _ = a.Release(ctx)
	b, _ := g.TryAcquire(ctx, "doc:1")
	defer b.Close()

	fmt.Println("B writes:", w.Write(ctx, b, "doc:1", []byte("B's text")))
	err = w.Write(ctx, a, "doc:1", []byte("A's stale text"))
	fmt.Println("A writes:", errors.Is(err, syncguard.ErrStaleFence))

	rec, _ := w.Read(ctx, "doc:1")
	fmt.Printf("stored: %q with B's fence: %t\n", rec.Value, rec.Fence == syncguard.FenceOf(b))
	// Output:
	// B writes: <nil>
	// A writes: true
	// stored: "B's text" with B's fence: true
}
