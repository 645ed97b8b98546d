package httpmw_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
	"github.com/syncguard/syncguard/internal/drivertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, drivertest.GoleakOptions()...)
}

// orders is a test handler that creates an order per request.
type orders struct {
	calls   atomic.Int32
	block   chan struct{} // if not nil, requests wait for it to close
	started chan struct{} // if not nil, receives once per request
	status  func(n int32) int
	size    int // body size, if not zero
}

func (o *orders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.calls.Add(1)
	if o.started != nil {
		o.started <- struct{}{}
	}
	if o.block != nil {
		<-o.block
	}
	body, _ := io.ReadAll(r.Body)
	status := http.StatusCreated
	if o.status != nil {
		status = o.status(n)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Order", "order-"+string(rune('0'+n)))
	w.WriteHeader(status)
	if o.size > 0 {
		_, _ = w.Write([]byte(strings.Repeat("x", o.size)))
		return
	}
	_, _ = w.Write([]byte(`{"order":` + string(rune('0'+n)) + `,"echo":` + string(body) + `}`))
}

type response struct {
	Status   int
	Replayed string
	Order    string
	Body     string
}

func newServer[C driver.Fenced](t *testing.T, g *syncguard.Guard[C], h http.Handler, opts ...httpmw.IdempotencyOption) *httptest.Server {
	t.Helper()
	// As the docs show: keys scoped to the caller's credentials (the test
	// client sends "Authorization: Bearer test" unless told otherwise).
	// X-Order is the test handler's own header, replayed on request.
	opts = append([]httpmw.IdempotencyOption{httpmw.Scope(httpmw.ScopeByHeader("Authorization")), httpmw.ReplayHeaders("X-Order")}, opts...)
	mw, err := httpmw.Idempotency(g, opts...)
	if err != nil {
		t.Fatalf("Idempotency: %v", err)
	}
	srv := httptest.NewServer(mw(h))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, key, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return response{Status: -1}
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.Header.Set("Authorization", "Bearer test")
	req.Host = "orders.test" // one name for every server, as behind a load balancer
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Error(err) // callable from any goroutine
		return response{Status: -1}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Replayed: res.Header.Get("Idempotent-Replayed"), Order: res.Header.Get("X-Order"), Body: string(b)}
}

// TestIdempotencyFlow: 400 without a key, the first request runs, the
// retry is replayed, another payload under the key is 422 — on every
// driver.
func TestIdempotencyFlow(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			h := &orders{}
			srv := newServer(t, d.NewGuard(), h)
			first := `{"item":"book"}`
			type step struct {
				name                  string
				method, path, key, in string
				want                  response
			}
			steps := []step{
				{"missing key", "POST", "/orders", "", first, response{Status: 400}},
				{"malformed key", "POST", "/orders", `"unterminated`, first, response{Status: 400}},
				{"first", "POST", "/orders", `"k-1"`, first, response{Status: 201, Order: "order-1", Body: `{"order":1,"echo":{"item":"book"}}`}},
				{"retry", "POST", "/orders", `"k-1"`, first, response{Status: 201, Replayed: "true", Order: "order-1", Body: `{"order":1,"echo":{"item":"book"}}`}},
				{"retry bare token", "POST", "/orders", `k-1`, first, response{Status: 201, Replayed: "true", Order: "order-1", Body: `{"order":1,"echo":{"item":"book"}}`}},
				{"other body", "POST", "/orders", `"k-1"`, `{"item":"pen"}`, response{Status: 422}},
				{"other path", "POST", "/orders?x=1", `"k-1"`, first, response{Status: 422}},
				{"other method", "PATCH", "/orders", `"k-1"`, first, response{Status: 422}},
				{"new key", "POST", "/orders", `"k-2"`, `{"item":"pen"}`, response{Status: 201, Order: "order-2", Body: `{"order":2,"echo":{"item":"pen"}}`}},
				{"GET passes", "GET", "/orders", "", "", response{Status: 201, Order: "order-3", Body: `{"order":3,"echo":}`}},
			}
			for _, s := range steps {
				got := do(t, srv, s.method, s.path, s.key, s.in)
				if s.want.Status >= 400 {
					var p struct{ Status int }
					if err := json.Unmarshal([]byte(got.Body), &p); err != nil || p.Status != s.want.Status {
						t.Errorf("%s: problem body %q", s.name, got.Body)
					}
					got.Body = ""
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", s.name, diff)
				}
			}
			if n := h.calls.Load(); n != 3 {
				t.Errorf("handler ran %d times, want 3", n)
			}
		})
	}
}

// TestIdempotencyConcurrent: real concurrent requests with one key run
// the handler once; a request arriving while it runs gets 409; afterwards
// the response is replayed.
func TestIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			h := &orders{block: make(chan struct{}), started: make(chan struct{}, 1)}
			// Two "processes": two middlewares over two Guards.
			srvA := newServer(t, d.NewGuard(), h)
			srvB := newServer(t, d.NewGuard(), h)

			firstDone := make(chan response, 1)
			go func() { firstDone <- do(t, srvA, "POST", "/pay", `"p-1"`, `{"amount":5}`) }()
			<-h.started // the first request is in the handler

			const n = 8
			var wg sync.WaitGroup
			statuses := make([]int, n)
			for i := range n {
				srv := srvA
				if i%2 == 1 {
					srv = srvB
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses[i] = do(t, srv, "POST", "/pay", `"p-1"`, `{"amount":5}`).Status
				}()
			}
			wg.Wait()
			for i, s := range statuses {
				if s != http.StatusConflict {
					t.Errorf("concurrent request %d: status %d, want 409", i, s)
				}
			}
			close(h.block)
			if got := <-firstDone; got.Status != 201 || got.Replayed != "" {
				t.Errorf("first request = %+v", got)
			}
			got := do(t, srvB, "POST", "/pay", `"p-1"`, `{"amount":5}`)
			if got.Status != 201 || got.Replayed != "true" || got.Order != "order-1" {
				t.Errorf("after completion = %+v", got)
			}
			if c := h.calls.Load(); c != 1 {
				t.Errorf("handler ran %d times", c)
			}
		})
	}
}

// TestIdempotencyRace: many simultaneous requests with one key, none
// waiting for another: the handler runs exactly once and every response is
// the original, its replay, or 409.
func TestIdempotencyRace(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			h := &orders{}
			srv := newServer(t, d.NewGuard(), h)
			var wg sync.WaitGroup
			results := make([]response, 12)
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = do(t, srv, "POST", "/x", `"race"`, `{}`)
				}()
			}
			wg.Wait()
			if c := h.calls.Load(); c != 1 {
				t.Fatalf("handler ran %d times", c)
			}
			for i, r := range results {
				if r.Status != 409 && (r.Status != 201 || r.Order != "order-1") {
					t.Errorf("response %d = %+v", i, r)
				}
			}
		})
	}
}

// TestIdempotencyOptions covers the options on the memory driver.
func TestIdempotencyOptions(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())

	t.Run("5xx stored by default", func(t *testing.T) {
		h := &orders{status: func(n int32) int { return 500 }}
		srv := newServer(t, g, h, httpmw.IdempotencyOnceOptions(syncguard.WithPrefix("o0:")))
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 500 || got.Replayed != "" {
			t.Errorf("first = %+v", got)
		}
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 500 || got.Replayed != "true" {
			t.Errorf("retry = %+v, want the stored 500", got)
		}
		if c := h.calls.Load(); c != 1 {
			t.Errorf("handler ran %d times", c)
		}
	})
	t.Run("503 excluded by StoreStatus", func(t *testing.T) {
		h := &orders{status: func(n int32) int {
			if n == 1 {
				return 503
			}
			return 201
		}}
		srv := newServer(t, g, h, httpmw.StoreStatus(func(s int) bool { return s != 503 }),
			httpmw.IdempotencyOnceOptions(syncguard.WithPrefix("o1:")))
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 503 {
			t.Errorf("first = %+v", got)
		}
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 201 || got.Replayed != "" {
			t.Errorf("retry after 503 = %+v, want the handler to run", got)
		}
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 201 || got.Replayed != "true" {
			t.Errorf("third = %+v, want replay", got)
		}
	})
	t.Run("large response completed, not replayed", func(t *testing.T) {
		h := &orders{size: 100}
		srv := newServer(t, g, h, httpmw.MaxResponseBytes(64), httpmw.IdempotencyOnceOptions(syncguard.WithPrefix("o2:")))
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 201 || len(got.Body) != 100 || got.Replayed != "" || got.Order != "order-1" {
			t.Errorf("first = %+v", got)
		}
		if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != http.StatusConflict {
			t.Errorf("retry = %+v, want 409", got)
		}
		if got := do(t, srv, "POST", "/", `"a"`, "other"); got.Status != http.StatusUnprocessableEntity {
			t.Errorf("other body = %+v, want 422", got)
		}
		if c := h.calls.Load(); c != 1 {
			t.Errorf("handler ran %d times", c)
		}
	})
	t.Run("scope", func(t *testing.T) {
		h := &orders{}
		srv := newServer(t, g, h, httpmw.Scope(func(r *http.Request) string { return r.Header.Get("X-Account") }),
			httpmw.IdempotencyOnceOptions(syncguard.WithPrefix("o3:")))
		a := do(t, srv, "POST", "/", `"same"`, "", "X-Account", "alice")
		b := do(t, srv, "POST", "/", `"same"`, "", "X-Account", "bob")
		a2 := do(t, srv, "POST", "/", `"same"`, "", "X-Account", "alice")
		if a.Order != "order-1" || b.Order != "order-2" || a2.Order != "order-1" || a2.Replayed != "true" {
			t.Errorf("scoped responses: %+v %+v %+v", a, b, a2)
		}
	})
	t.Run("optional key and methods", func(t *testing.T) {
		h := &orders{}
		srv := newServer(t, g, h, httpmw.KeyRequired(false), httpmw.Methods("put"),
			httpmw.ReplayHeader("X-Replayed"), httpmw.IdempotencyOnceOptions(syncguard.WithPrefix("o4:")))
		if got := do(t, srv, "PUT", "/", "", ""); got.Status != 201 {
			t.Errorf("PUT without key = %+v", got)
		}
		if got := do(t, srv, "POST", "/", `"x"`, ""); got.Status != 201 || got.Order != "order-2" {
			t.Errorf("POST (not configured) = %+v", got)
		}
		do(t, srv, "PUT", "/", `"x"`, "")
		req, _ := http.NewRequest("PUT", srv.URL+"/", nil)
		req.Header.Set("Idempotency-Key", `"x"`)
		req.Header.Set("Authorization", "Bearer test")
		req.Host = "orders.test"
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("X-Replayed") != "true" {
			t.Errorf("custom replay header missing: %v", res.Header)
		}
	})
	t.Run("request too large", func(t *testing.T) {
		srv := newServer(t, g, &orders{}, httpmw.MaxRequestBytes(10))
		if got := do(t, srv, "POST", "/", `"big"`, strings.Repeat("y", 11)); got.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d", got.Status)
		}
	})
	t.Run("duplicate header", func(t *testing.T) {
		srv := newServer(t, g, &orders{})
		req, _ := http.NewRequest("POST", srv.URL+"/", nil)
		req.Header.Add("Idempotency-Key", `"a"`)
		req.Header.Add("Idempotency-Key", `"b"`)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("status %d", res.StatusCode)
		}
	})
	t.Run("invalid options", func(t *testing.T) {
		for name, o := range map[string]httpmw.IdempotencyOption{
			"max request":  httpmw.MaxRequestBytes(0),
			"max response": httpmw.MaxResponseBytes(-1),
			"replay":       httpmw.ReplayHeader(""),
			"store":        httpmw.StoreStatus(nil),
			"fingerprint":  httpmw.FingerprintFunc(nil),
			"once":         httpmw.IdempotencyOnceOptions(syncguard.WithRetention(-1)),
			"nil scope":    httpmw.Scope(nil),
			"set-cookie":   httpmw.ReplayHeaders("X-Ok", "set-cookie"),
			"hop-by-hop":   httpmw.ReplayHeaders("Connection"),
		} {
			if _, err := httpmw.Idempotency(g, httpmw.Scope(httpmw.ScopeByHeader("Authorization")), o); !errors.Is(err, syncguard.ErrInvalidArgument) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

// downBackend fails every record read.
type downBackend struct{ driver.Backend }

func (downBackend) GetRecord(context.Context, string) (*driver.Record, error) {
	return nil, driver.NewError(driver.ServiceUnavailable, "down")
}

// TestIdempotencyBackendDown: the middleware fails closed with 503 and
// reports the error; the handler does not run.
func TestIdempotencyBackendDown(t *testing.T) {
	t.Parallel()
	g := syncguard.New(drivertest.Fake(downBackend{memory.New()}))
	h := &orders{}
	var reported atomic.Int32
	srv := newServer(t, g, h, httpmw.OnIdempotencyError(func(r *http.Request, err error) {
		if errors.Is(err, syncguard.ErrServiceUnavailable) {
			reported.Add(1)
		}
	}))
	if got := do(t, srv, "POST", "/", `"a"`, ""); got.Status != 503 {
		t.Errorf("status %d", got.Status)
	}
	if h.calls.Load() != 0 || reported.Load() != 1 {
		t.Errorf("handler calls %d, reported %d", h.calls.Load(), reported.Load())
	}
}

// TestIdempotencyLeaseContext: the handler's request context ends with the
// client's.
func TestIdempotencyLeaseContext(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())
	mw, err := httpmw.Idempotency(g, httpmw.Scope(func(*http.Request) string { return "all" }))
	if err != nil {
		t.Fatal(err)
	}
	var sawCause error
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		sawCause = context.Cause(r.Context())
		w.WriteHeader(500)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
	req.Header.Set("Idempotency-Key", `"c"`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if !errors.Is(sawCause, context.DeadlineExceeded) || rec.Code != 500 {
		t.Errorf("cause %v, code %d", sawCause, rec.Code)
	}
}
