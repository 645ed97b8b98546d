package httpmw_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
	"github.com/syncguard/syncguard/semaphore"
)

func newSemaphore(t *testing.T, d driver.Driver[memory.Capabilities], n int) *semaphore.Semaphore[memory.Capabilities] {
	t.Helper()
	s, err := semaphore.New(d, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConcurrencyLimit: two requests of a tenant run at once, the third
// is refused with Retry-After, another tenant is not affected, and a
// finished request frees its permit.
func TestConcurrencyLimit(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []httpmw.ConcurrencyOption
		status     int
		retryAfter string
	}{
		{"default", nil, http.StatusServiceUnavailable, "1"},
		{"429", []httpmw.ConcurrencyOption{httpmw.ConcurrencyRefusal(http.StatusTooManyRequests, 2500*time.Millisecond)}, http.StatusTooManyRequests, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSemaphore(t, memory.New(), 2)
			release := make(chan struct{})
			started := make(chan struct{}, 4)
			h := func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-release
			}
			opts := append([]httpmw.ConcurrencyOption{httpmw.ConcurrencyKeyFunc(func(r *http.Request) string { return r.Header.Get("Tenant") })}, tc.opts...)
			mw, err := httpmw.ConcurrencyLimit(s, opts...)
			if err != nil {
				t.Fatal(err)
			}
			srv := mw(http.HandlerFunc(h))
			do := func(tenant string) *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/export", nil)
				req.Header.Set("Tenant", tenant)
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				return rec
			}
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					if rec := do("acme"); rec.Code != http.StatusOK {
						t.Errorf("held request answered %d", rec.Code)
					}
				})
				<-started
			}
			rec := do("acme")
			if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("third request: %d Retry-After %q; want %d %q", rec.Code, rec.Header().Get("Retry-After"), tc.status, tc.retryAfter)
			}
			wg.Go(func() {
				if rec := do("globex"); rec.Code != http.StatusOK {
					t.Errorf("other tenant answered %d", rec.Code)
				}
			})
			<-started
			close(release)
			wg.Wait()
			if rec := do("acme"); rec.Code != http.StatusOK {
				t.Errorf("after the release: %d; want 200", rec.Code)
			}
			if rec := do(""); rec.Code != http.StatusOK {
				t.Errorf("unkeyed request: %d; want 200", rec.Code)
			}
		})
	}
}

// TestConcurrencyWait: a request waits for a permit up to the wait.
func TestConcurrencyWait(t *testing.T) {
	s := newSemaphore(t, memory.New(), 1)
	l, err := s.TryAcquire(t.Context(), "ip:192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	mw, err := httpmw.ConcurrencyLimit(s, httpmw.ConcurrencyWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, l.Close)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("waiting request: %d; want 200", rec.Code)
	}
}

// down is a permit store whose backend is unreachable.
type down struct{ *memory.Driver }

func (down) AcquirePermit(context.Context, string, int, time.Duration) (driver.AcquireResult, error) {
	return driver.AcquireResult{}, driver.NewError(driver.ServiceUnavailable, "connection refused")
}

func TestConcurrencyBackendDown(t *testing.T) {
	for _, tc := range []struct {
		failClosed bool
		want       int
	}{{false, http.StatusOK}, {true, http.StatusServiceUnavailable}} {
		s := newSemaphore(t, down{memory.New()}, 1)
		var errs int
		mw, err := httpmw.ConcurrencyLimit(s, httpmw.ConcurrencyFailClosed(tc.failClosed),
			httpmw.OnConcurrencyError(func(*http.Request, error) { errs++ }))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code != tc.want || errs != 1 {
			t.Errorf("fail-closed %v: %d with %d errors; want %d with 1", tc.failClosed, rec.Code, errs, tc.want)
		}
	}
}

func TestConcurrencyInvalid(t *testing.T) {
	s := newSemaphore(t, memory.New(), 1)
	for name, opt := range map[string]httpmw.ConcurrencyOption{
		"status 500":    httpmw.ConcurrencyRefusal(http.StatusInternalServerError, time.Second),
		"retry 0":       httpmw.ConcurrencyRefusal(http.StatusTooManyRequests, 0),
		"negative wait": httpmw.ConcurrencyWait(-time.Second),
	} {
		if _, err := httpmw.ConcurrencyLimit(s, opt); driver.CodeOf(err) != driver.InvalidArgument {
			t.Errorf("%s: %v; want InvalidArgument", name, err)
		}
	}
	if _, err := httpmw.ConcurrencyLimit[memory.Capabilities](nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("nil semaphore: %v; want InvalidArgument", err)
	}
}
