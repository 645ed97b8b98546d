package main

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunPermits: `run --permits 2` lets two commands of one key run at
// once and never three, across processes; with both permits held,
// --no-wait exits 75.
func TestRunPermits(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"redis", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backend := map[string]func(*testing.T) string{"redis": redisURL, "postgres": postgresURL}[name](t)
			key := randomKey("permits")
			log := filepath.Join(t.TempDir(), "log")
			script := `echo "start $(date +%s%N)" >> "$1"; sleep 0.4; echo "end $(date +%s%N)" >> "$1"`
			var wg sync.WaitGroup
			for i := range 5 {
				wg.Go(func() {
					code, _, stderr := sg(t, "run", "--backend", backend, "--key", key, "--permits", "2", "--ttl", "5s", "--wait", "60s",
						"--", "sh", "-c", script, "sh", log)
					if code != 0 {
						t.Errorf("run %d exited %d: %s", i, code, stderr)
					}
				})
			}
			wg.Wait()
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			type edge struct {
				at    int64
				delta int
			}
			var edges []edge
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				kind, ts, _ := strings.Cut(line, " ")
				n, _ := strconv.ParseInt(ts, 10, 64)
				edges = append(edges, edge{n, map[string]int{"start": 1, "end": -1}[kind]})
			}
			sort.Slice(edges, func(i, j int) bool {
				return edges[i].at < edges[j].at || edges[i].at == edges[j].at && edges[i].delta < edges[j].delta
			})
			running, most := 0, 0
			for _, e := range edges {
				running += e.delta
				most = max(most, running)
			}
			if len(edges) != 10 || most != 2 {
				t.Errorf("%d edges, at most %d commands at once; want 10 edges and 2 at once\n%s", len(edges), most, b)
			}

			// Both permits held by sleeping commands: a third is busy.
			done := make(chan struct{})
			for range 2 {
				go func() {
					defer func() { done <- struct{}{} }()
					sg(t, "run", "--backend", backend, "--key", key, "--permits", "2", "--", "sh", "-c", `echo x >> "$1"; sleep 2`, "sh", log+"2")
				}()
			}
			waitLines(t, log+"2", 2)
			code, _, stderr := sg(t, "run", "--backend", backend, "--key", key, "--permits", "2", "--no-wait", "--", "true")
			if code != 75 || !strings.Contains(stderr, "all 2 permits") {
				t.Errorf("third run: exit %d, %q; want 75, all 2 permits held", code, stderr)
			}
			<-done
			<-done
		})
	}
}

// waitLines waits until file has n lines.
func waitLines(t *testing.T, file string, n int) {
	t.Helper()
	for range 500 {
		if b, err := os.ReadFile(file); err == nil && strings.Count(string(b), "\n") >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never got %d lines", file, n)
}
