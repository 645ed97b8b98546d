package election_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/election"
)

// One scheduler instance leads; the others follow and know where it runs.
func Example() {
	ctx := context.Background()
	g := syncguard.New(memory.New())
	e, err := election.New(g, "scheduler")
	if err != nil {
		panic(err)
	}
	lead, err := e.Campaign(ctx, []byte("10.0.0.7:8080"), syncguard.TTL(10*time.Second))
	if err != nil {
		panic(err)
	}
	defer e.Resign(ctx, lead)

	leader, _ := e.Leader(ctx)
	fmt.Printf("leader at %s, term is the lease's fence: %v\n", leader.Value, leader.Term == syncguard.FenceOf(lead))
	// Lead until the leadership is lost (lead.Lost()) or the work is done;
	// stamp writes with syncguard.FenceOf(lead) so a deposed leader's are refused.
	// Output:
	// leader at 10.0.0.7:8080, term is the lease's fence: true
}
