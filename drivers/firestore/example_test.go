package firestore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard"
	sgfirestore "github.com/syncguard/syncguard/drivers/firestore"
)

// A Guard over Firestore. With FIRESTORE_EMULATOR_HOST set, the client
// talks to the emulator. (This example needs a server, so it is compiled
// but not run by go test.)
func Example() {
	ctx := context.Background()
	client, err := firestore.NewClient(ctx, "demo-test")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	d, err := sgfirestore.New(client, sgfirestore.WithCollections("locks", "fence_counters"))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.CheckIndex(ctx); err != nil {
		log.Fatal(err) // names the missing lockId index
	}

	g := syncguard.New(d)
	err = g.Do(ctx, "report:nightly", func(ctx context.Context, l *syncguard.Lease[sgfirestore.Capabilities]) error {
		fmt.Println("running with fence", syncguard.FenceOf(l))
		return nil
	}, syncguard.TTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
}
