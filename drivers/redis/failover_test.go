package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// TestClusterFailover: on a cluster of its own (a failover leaves promoted
// primaries behind), take keys served by one master, hand
// out fences, SIGKILL that master (by PID), wait for its replica to be
// promoted, and acquire the keys again: every new fence must be greater
// than every fence returned before the kill. During the outage operations
// must fail with a mapped error within their context, never hang or panic.
// The killed node is restarted and rejoins as a replica.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("SYNCGUARD_REDIS_FAILOVER_DIR")
	addrs := failoverAddrs()
	if dir == "" || addrs == nil {
		needBackend(t, "SYNCGUARD_REDIS_FAILOVER_CLUSTER and SYNCGUARD_REDIS_FAILOVER_DIR are not set (scripts/test starts a second cluster for this test)")
	}
	c := newClient(t, addrs, func(o *rueidis.ClientOption) { o.ShuffleInit = true })
	d := newDriver(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Pick keys whose slots one master serves.
	masters, err := slotMasters(ctx, c)
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	slotOf := func(key string) uint16 {
		kn, _ := d.names(key)
		return keySlot(kn.body)
	}
	victim := masters[slotOf("failover:0")]
	var keys []string
	for i := 0; len(keys) < 6; i++ {
		k := fmt.Sprintf("failover:%d", i)
		if masters[slotOf(k)] == victim {
			keys = append(keys, k)
		}
	}
	port := victim[strings.LastIndexByte(victim, ':')+1:]
	t.Logf("victim master %s; keys %v", victim, keys)

	// Fences before the kill. The last key is acquired immediately before
	// the kill and is fresh: the promoted replica may not have seen it.
	maxBefore := map[string]driver.Fence{}
	for _, k := range keys[:len(keys)-1] {
		for range 3 {
			r, err := d.Acquire(ctx, k, 30*time.Second)
			if err != nil || !r.Acquired {
				t.Fatalf("Acquire(%s) = %+v, %v", k, r, err)
			}
			maxBefore[k] = r.Fence
			if _, err := d.Release(ctx, "", r.LockID); err != nil {
				t.Fatal(err)
			}
		}
		// Leave the last one held: its TTL must also block the new primary.
		r, err := d.Acquire(ctx, k, 3*time.Second)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire(%s) = %+v, %v", k, r, err)
		}
		maxBefore[k] = r.Fence
	}
	last := keys[len(keys)-1]
	r, err := d.Acquire(ctx, last, 3*time.Second)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(%s) = %+v, %v", last, r, err)
	}
	maxBefore[last] = r.Fence

	pid, err := readPid(filepath.Join(dir, port, "redis.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	killed := time.Now()
	t.Cleanup(func() { restartNode(t, c, dir, port) })

	// During the outage: errors are mapped and come back within the context.
	var outageCodes []string
	for i := 0; i < 3; i++ {
		octx, ocancel := context.WithTimeout(ctx, 500*time.Millisecond)
		start := time.Now()
		r, err := d.Acquire(octx, keys[0], time.Second)
		took := time.Since(start)
		ocancel()
		if took > 600*time.Millisecond {
			t.Errorf("Acquire during outage took %v; want within its 500ms context + 100ms", took)
		}
		if err == nil {
			if r.Acquired {
				t.Errorf("Acquire during outage acquired a key held before the kill: %+v", r)
			}
			continue
		}
		code := driver.CodeOf(err)
		if code != driver.ServiceUnavailable && code != driver.NetworkTimeout {
			t.Errorf("Acquire during outage: %v (code %v); want ServiceUnavailable or NetworkTimeout", err, code)
		}
		outageCodes = append(outageCodes, code.String())
	}
	t.Logf("errors during the outage: %v", outageCodes)

	// Acquire every key again until the promoted primary answers.
	for _, k := range keys {
		var got driver.Fence
		deadline := time.Now().Add(60 * time.Second)
		for {
			actx, acancel := context.WithTimeout(ctx, 2*time.Second)
			r, err := d.Acquire(actx, k, 30*time.Second)
			acancel()
			if err == nil && r.Acquired {
				got = r.Fence
				break
			}
			if err != nil {
				var le *driver.LockError
				if !errors.As(err, &le) {
					t.Fatalf("unmapped error: %T %v", err, err)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s not acquirable 60s after the kill: %+v, %v", k, r, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got <= maxBefore[k] {
			t.Errorf("key %s: fence after failover %v ≤ fence before the kill %v: a fence was handed out twice", k, got, maxBefore[k])
		}
		t.Logf("key %s: fence before %v, after failover %v (%.1fs after the kill)", k, maxBefore[k], got, time.Since(killed).Seconds())
	}
	// A key never used before, on the promoted primary.
	var fresh string
	for i := 0; ; i++ {
		fresh = fmt.Sprintf("fresh:%d", i)
		if masters[slotOf(fresh)] == victim {
			break
		}
	}
	r, err = d.Acquire(ctx, fresh, time.Second)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(fresh) = %+v, %v", r, err)
	}
	// Its fence is the time floor, above every fence handed out before.
	for k, f := range maxBefore {
		if r.Fence <= f {
			t.Errorf("fresh key on a promoted primary: fence %v ≤ key %s's fence before the kill %v", r.Fence, k, f)
		}
	}
}

// slotMasters maps each slot to its master's address.
func slotMasters(ctx context.Context, c rueidis.Client) (map[uint16]string, error) {
	res, err := c.Do(ctx, c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		return nil, err
	}
	m := make(map[uint16]string, numSlots)
	for _, rng := range res {
		v, err := rng.ToArray()
		if err != nil || len(v) < 3 {
			return nil, fmt.Errorf("bad CLUSTER SLOTS entry")
		}
		lo, _ := v[0].AsInt64()
		hi, _ := v[1].AsInt64()
		node, _ := v[2].ToArray()
		host, _ := node[0].ToString()
		p, _ := node[1].AsInt64()
		for s := lo; s <= hi; s++ {
			m[uint16(s)] = fmt.Sprintf("%s:%d", host, p)
		}
	}
	return m, nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// restartNode starts the killed node again from its config and waits until
// the cluster is healthy, with every replica linked.
func restartNode(t *testing.T, c rueidis.Client, dir, port string) {
	cmd := exec.Command("redis-server", filepath.Join(dir, port, "redis.conf"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("restart node %s: %v: %s", port, err, out)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if clusterHealthy(ctx, c) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("cluster not healthy 60s after restarting node %s", port)
}

// clusterHealthy asks every node of the cluster (redis-cli, so replicas
// are included) whether the cluster is ok and its replicas are linked.
func clusterHealthy(ctx context.Context, _ rueidis.Client) bool {
	addrs := failoverAddrs()
	masters := 0
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		info, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
		if err != nil || !strings.Contains(string(info), "cluster_state:ok") {
			return false
		}
		repl, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "info", "replication").Output()
		if err != nil {
			return false
		}
		switch r := string(repl); {
		case strings.Contains(r, "role:master"):
			masters++
		case !strings.Contains(r, "master_link_status:up"):
			return false
		}
	}
	return masters == 3
}
