package syncguard_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// A limit of 1 event per minute with a burst of 3: three calls pass at
// once, the fourth must wait about a minute.
func ExampleRateLimiter() {
	lim, err := syncguard.NewRateLimiter(memory.New(),
		syncguard.RateLimit{Limit: 1, Period: time.Minute, Burst: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		res, err := lim.AllowN(ctx, "user:42", 1)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("request %d: allowed=%v remaining=%d retry≈%v\n",
			i, res.Allowed == 1, res.Remaining, res.RetryAfter.Round(time.Minute))
	}
	// Output:
	// request 1: allowed=true remaining=2 retry≈0s
	// request 2: allowed=true remaining=1 retry≈0s
	// request 3: allowed=true remaining=0 retry≈0s
	// request 4: allowed=false remaining=0 retry≈1m0s
}
