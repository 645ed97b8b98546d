package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// The memory driver needs no server: create it and use the driver contract
// directly (or wrap it in a syncguard.Guard).
func Example() {
	ctx := context.Background()
	d := memory.New()

	first, err := d.Acquire(ctx, "payment:123", 30*time.Second)
	if err != nil {
		panic(err)
	}
	fmt.Println("acquired:", first.Acquired)

	// A second acquisition of a held key is contention, not an error.
	second, err := d.Acquire(ctx, "payment:123", 30*time.Second)
	fmt.Println("acquired:", second.Acquired, "reason:", second.Reason, "error:", err)

	rel, _ := d.Release(ctx, "payment:123", first.LockID)
	fmt.Println("released:", rel.OK)

	// Fences keep increasing across acquisitions of the key (they are
	// floored by the clock: 15 digits, about 6·10¹² in 2027).
	third, _ := d.Acquire(ctx, "payment:123", 30*time.Second)
	fmt.Println("acquired:", third.Acquired, "fence increased:", third.Fence > first.Fence)
	fmt.Printf("%+v\n", driver.Describe(d.Capabilities()))

	// Output:
	// acquired: true
	// acquired: false reason: locked error: <nil>
	// released: true
	// acquired: true fence increased: true
	// {Name:memory Fencing:true ServerTime:true FairHandoff:true CrossProcess:false}
}

// WithClock makes expiry deterministic in tests.
func ExampleWithClock() {
	now := time.UnixMilli(1_700_000_000_000)
	d := memory.New(memory.WithClock(func() time.Time { return now }))
	ctx := context.Background()

	lock, _ := d.Acquire(ctx, "job", time.Second)
	now = now.Add(1999 * time.Millisecond) // past expiry, within the 1 s tolerance
	held, _ := d.IsLocked(ctx, "job")
	fmt.Println("held within tolerance:", held)

	now = now.Add(time.Millisecond) // expiry + 1000 ms
	held, _ = d.IsLocked(ctx, "job")
	fmt.Println("held after tolerance:", held)

	ext, _ := d.Extend(ctx, "", lock.LockID, time.Second)
	fmt.Println("extend:", ext.OK, ext.Detail)

	// Output:
	// held within tolerance: true
	// held after tolerance: false
	// extend: false expired
}
