package reliability

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/redis"
	"github.com/syncguard/syncguard/httpmw"
)

// TestIdempotencyRedisDown is issue 16's first report: a POST through the
// Idempotency-Key middleware, Redis stopped, the client built exactly as
// docs/redis.md shows and the driver with its default call timeout. The
// request's context has no deadline (net/http's). It used to get no answer
// at all while Redis stayed down (curl -m 12 gave up); it must get 503
// within the driver's bound.
func TestIdempotencyRedisDown(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t, privateRedisPort(3))
	d, err := redis.New(docsRedisClient(t, r.addr()), redis.WithKeyPrefix("sgidem"+token()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	idem, err := httpmw.Idempotency(syncguard.New(d), httpmw.Scope(httpmw.ScopeByHeader("Authorization")))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(idem(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})))
	t.Cleanup(srv.Close)
	post := func(key string) (*http.Response, time.Duration) {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/charges", strings.NewReader(`{"amount":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("Authorization", "Bearer alice")
		c := &http.Client{Timeout: 20 * time.Second}
		start := time.Now()
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST: %v after %v", err, time.Since(start))
		}
		res.Body.Close()
		return res, time.Since(start)
	}
	if res, _ := post("warm-" + token()); res.StatusCode != http.StatusCreated {
		t.Fatalf("with Redis up: %d", res.StatusCode)
	}
	r.kill()
	res, took := post("down-" + token())
	t.Logf("Redis stopped: %d after %v (Retry-After %q)", res.StatusCode, took.Round(time.Millisecond), res.Header.Get("Retry-After"))
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if bound := redis.DefaultCallTimeout + 500*time.Millisecond; took > bound {
		t.Errorf("answered after %v; want within the call timeout (%v) + 500ms", took, redis.DefaultCallTimeout)
	}
}
