package reliability

import (
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/reliability/workload"
)

// soakDuration is the soak per driver: 5s by default (CI), -soak=5m for a
// long run.
func soakDuration() time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	return 5 * time.Second
}

func soak(t *testing.T, name string, b driver.Backend) {
	t.Helper()
	start := time.Now()
	r := workload.Soak(t.Context(), b, workload.SoakConfig{Duration: soakDuration(), Workers: 8, Keys: 4, Prefix: "soak-" + token()})
	t.Logf("soak %s: %v, %d operations (%.0f/s), %d exclusive sections, %d rate calls, errors by code: %s, %d exclusion violations",
		name, time.Since(start).Round(time.Millisecond), r.Ops, float64(r.Ops)/time.Since(start).Seconds(), r.CriticalSections, r.RateCalls,
		workload.FormatErrors(r.Errors), len(r.Violations))
	for _, v := range r.Violations {
		t.Errorf("soak %s: %s", name, v)
	}
	if r.CriticalSections == 0 {
		t.Errorf("soak %s: no exclusive section completed", name)
	}
	if n := len(r.Errors); n > 0 {
		t.Errorf("soak %s: errors without faults: %s", name, workload.FormatErrors(r.Errors))
	}
}

func TestSoakMemory(t *testing.T) {
	t.Parallel()
	soak(t, "memory", memory.New())
}

func TestSoakRedis(t *testing.T) {
	t.Parallel()
	c := redisClient(t, []string{redisAddr()})
	soak(t, "redis", redisDriver(t, c, "sgrel:"+token()))
}

func TestSoakRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := clusterAddrs()
	if addrs == nil {
		needBackend(t, "SYNCGUARD_REDIS_CLUSTER is not set (scripts/test starts a cluster)")
	}
	c := redisClient(t, addrs)
	soak(t, "redis-cluster", redisDriver(t, c, "sgrel:"+token()))
}

func TestSoakPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgDSN()
	schema := pgSchema(t, dsn)
	soak(t, "postgres", pgDriver(t, pgPool(t, dsn, schema, nil)))
}
