package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/redis"
)

// A Guard over a single Redis node. For a Redis Cluster pass several seeds
// in InitAddress; for Sentinel set ClientOption.Sentinel.MasterSet. (This
// example needs a server, so it is compiled but not run by go test.)
func Example() {
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{"127.0.0.1:6379"},
		DisableCache: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	d, err := redis.New(client, redis.WithKeyPrefix("billing"))
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	g := syncguard.New(d)

	ctx := context.Background()
	err = g.Do(ctx, "invoice:42", func(ctx context.Context, l *syncguard.Lease[redis.Capabilities]) error {
		// Pass the fence to the storage you write, so a stale holder's
		// writes can be refused.
		fmt.Println("charging with fence", syncguard.FenceOf(l))
		return nil
	}, syncguard.TTL(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
}

// Sentinel: the driver follows the primary that the sentinels elect.
func Example_sentinel() {
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:  []string{"127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"},
		Sentinel:     rueidis.SentinelOption{MasterSet: "mymaster"},
		DisableCache: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	d, err := redis.New(client)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	_ = syncguard.New(d)
}
