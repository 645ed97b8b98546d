// Command fifoprobe measures the fastest first-come-first-served hand-off Redis offers (a
// token list, BLPOP blocks clients in arrival order, RPUSH hands the token
// to the longest-blocked one), 16 clients each with its own connection,
// hold 1 ms, as the compare command's contended scenario.
package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6399", "")
	g := flag.Int("g", 16, "")
	hold := flag.Duration("hold", time.Millisecond, "")
	d := flag.Duration("d", 3*time.Second, "")
	flag.Parse()
	ctx := context.Background()
	key := fmt.Sprintf("fifoprobe:%d", time.Now().UnixNano())
	var clients []rueidis.Client
	for i := 0; i < *g; i++ {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{*addr}, DisableCache: true})
		if err != nil {
			panic(err)
		}
		clients = append(clients, c)
	}
	clients[0].Do(ctx, clients[0].B().Rpush().Key(key).Element("1").Build())
	var stop atomic.Bool
	var inCS atomic.Int32
	var violations atomic.Int32
	wins := make([]int, *g)
	var mu sync.Mutex
	var waits []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *g; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := clients[i]
			for !stop.Load() {
				t0 := time.Now()
				r, err := c.Do(ctx, c.B().Blpop().Key(key).Timeout(1).Build()).AsStrSlice()
				if err != nil || len(r) == 0 {
					continue
				}
				w := time.Since(t0)
				if inCS.Add(1) != 1 {
					violations.Add(1)
				}
				time.Sleep(*hold)
				inCS.Add(-1)
				wins[i]++
				mu.Lock()
				waits = append(waits, w)
				mu.Unlock()
				c.Do(ctx, c.B().Rpush().Key(key).Element("1").Build())
			}
		}(i)
	}
	time.Sleep(*d)
	stop.Store(true)
	el := time.Since(start)
	wg.Wait()
	clients[0].Do(ctx, clients[0].B().Del().Key(key).Build())
	sort.Slice(waits, func(a, b int) bool { return waits[a] < waits[b] })
	mn, mx := wins[0], wins[0]
	for _, w := range wins {
		mn, mx = min(mn, w), max(mx, w)
	}
	fmt.Printf("CS/s %.0f  wait p50 %v p99 %v max %v  wins %d/%d  violations %d\n",
		float64(len(waits))/el.Seconds(), waits[len(waits)/2], waits[len(waits)*99/100], waits[len(waits)-1], mn, mx, violations.Load())
}
