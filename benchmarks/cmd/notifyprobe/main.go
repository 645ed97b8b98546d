// Command notifyprobe measures the latency of a grant sent by NOTIFY in a synchronously committed
// transaction to one of 16 LISTEN connections, when all 16 listen on one
// channel (SyncGuard today) and when each listens on its own channel
// (issue 22; results in docs/benchmarks.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	url := flag.String("url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "")
	n := flag.Int("n", 16, "listeners")
	iters := flag.Int("iters", 500, "")
	own := flag.Bool("own", false, "each listener on its own channel")
	flag.Parse()
	ctx := context.Background()
	type msg struct {
		at      time.Time
		payload string
	}
	got := make([]chan msg, *n)
	for i := 0; i < *n; i++ {
		c, err := pgx.Connect(ctx, *url)
		if err != nil {
			panic(err)
		}
		ch := "probe"
		if *own {
			ch = "probe" + strconv.Itoa(i)
		}
		if _, err := c.Exec(ctx, "LISTEN "+ch); err != nil {
			panic(err)
		}
		got[i] = make(chan msg, 1024)
		go func(i int, c *pgx.Conn) {
			for {
				nt, err := c.WaitForNotification(ctx)
				if err != nil {
					return
				}
				got[i] <- msg{time.Now(), nt.Payload}
			}
		}(i, c)
	}
	sender, err := pgx.Connect(ctx, *url)
	if err != nil {
		panic(err)
	}
	sender.Exec(ctx, "CREATE TABLE IF NOT EXISTS probe_t (k int PRIMARY KEY, v bigint)")
	sender.Exec(ctx, "INSERT INTO probe_t VALUES (1, 0) ON CONFLICT DO NOTHING")
	var lat, commit []time.Duration
	for it := 0; it < *iters; it++ {
		target := it % *n
		ch := "probe"
		if *own {
			ch = "probe" + strconv.Itoa(target)
		}
		t0 := time.Now()
		// a durable write and the grant, in one synchronously committed statement
		_, err := sender.Exec(ctx, "WITH u AS (UPDATE probe_t SET v = v + 1 WHERE k = 1 RETURNING v) SELECT pg_notify($1, $2::text) FROM u", ch, strconv.Itoa(it))
		if err != nil {
			panic(err)
		}
		t1 := time.Now()
		for {
			m := <-got[target]
			if m.payload == strconv.Itoa(it) {
				lat = append(lat, m.at.Sub(t0))
				commit = append(commit, t1.Sub(t0))
				break
			}
		}
		// drain others
		for i := range got {
			for len(got[i]) > 0 {
				<-got[i]
			}
		}
		time.Sleep(time.Millisecond)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	sort.Slice(commit, func(a, b int) bool { return commit[a] < commit[b] })
	fmt.Printf("own=%v listeners=%d: statement+commit p50 %v p90 %v | to target listener p50 %v p90 %v p99 %v\n", *own, *n,
		commit[len(commit)/2], commit[len(commit)*9/10], lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100])
}
