package httpmw_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
)

// The first request with an Idempotency-Key runs the handler; a retry gets
// the stored response, marked as a replay; reusing the key for another
// payload is refused.
func ExampleIdempotency() {
	g := syncguard.New(memory.New())
	// Keys are scoped per client: here by the credentials the client sends
	// (authenticate before this middleware).
	idem, err := httpmw.Idempotency(g, httpmw.Scope(httpmw.ScopeByHeader("Authorization")))
	if err != nil {
		fmt.Println(err)
		return
	}
	charges := 0
	h := idem(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		charges++
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "charge #%d", charges)
	}))

	send := func(key, body string) {
		req := httptest.NewRequest("POST", "/charges", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		req.Header.Set("Authorization", "Bearer token-of-alice")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 400 {
			b = nil // a problem+json document
		}
		fmt.Printf("%d replayed=%q body=%q\n", res.StatusCode, res.Header.Get("Idempotent-Replayed"), b)
	}
	send(`"a1b2"`, `{"amount":100}`)
	send(`"a1b2"`, `{"amount":100}`) // the client retries
	send(`"a1b2"`, `{"amount":999}`) // same key, other payload
	send("", `{"amount":100}`)       // no key
	// Output:
	// 201 replayed="" body="charge #1"
	// 201 replayed="true" body="charge #1"
	// 422 replayed="" body=""
	// 400 replayed="" body=""
}

// RateLimit answers requests over the limit with 429 and tells clients
// where they stand.
func ExampleRateLimit() {
	lim, err := syncguard.NewRateLimiter(memory.New(), syncguard.RateLimit{Limit: 1, Period: time.Minute, Burst: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	rl, err := httpmw.RateLimit(lim) // per client IP
	if err != nil {
		fmt.Println(err)
		return
	}
	h := rl(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		hd := rec.Result().Header
		fmt.Printf("%d limit=%s remaining=%s reset=%s retry-after=%q\n", rec.Code,
			hd.Get("RateLimit-Limit"), hd.Get("RateLimit-Remaining"), hd.Get("RateLimit-Reset"), hd.Get("Retry-After"))
	}
	// Output:
	// 200 limit=2 remaining=1 reset=60 retry-after=""
	// 200 limit=2 remaining=0 reset=120 retry-after=""
	// 429 limit=2 remaining=0 reset=120 retry-after="60"
}
