package httpmw_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
	"github.com/syncguard/syncguard/internal/drivertest"
)

type rlResponse struct {
	Status                              int
	Limit, Remaining, Reset, RetryAfter string
}

func rlDo(t *testing.T, h http.Handler, user string) rlResponse {
	t.Helper()
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	if user != "" {
		req.Header.Set("X-User", user)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	hd := rec.Result().Header
	return rlResponse{rec.Code, hd.Get("RateLimit-Limit"), hd.Get("RateLimit-Remaining"), hd.Get("RateLimit-Reset"), hd.Get("Retry-After")}
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })

// TestRateLimitHeaders: the headers on allowed and refused responses and
// the 429, per user, on every driver. 1 request per 10 s, burst 2: the
// numbers do not move during the test.
func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1, Period: 10 * time.Second, Burst: 2})
			if err != nil {
				t.Fatal(err)
			}
			mw, err := httpmw.RateLimit(lim, httpmw.KeyFunc(func(r *http.Request) string {
				if u := r.Header.Get("X-User"); u != "" {
					return "user:" + u
				}
				return httpmw.ClientIP(r)
			}))
			if err != nil {
				t.Fatal(err)
			}
			h := mw(okHandler)
			got := []rlResponse{rlDo(t, h, "ann"), rlDo(t, h, "ann"), rlDo(t, h, "ann"), rlDo(t, h, "bob"), rlDo(t, h, "")}
			want := []rlResponse{
				{Status: 204, Limit: "2", Remaining: "1", Reset: "10"},
				{Status: 204, Limit: "2", Remaining: "0", Reset: "20"},
				// Retry-After: 10 s minus the few ms since, rounded up.
				{Status: 429, Limit: "2", Remaining: "0", Reset: "20", RetryAfter: "10"},
				{Status: 204, Limit: "2", Remaining: "1", Reset: "10"},
				{Status: 204, Limit: "2", Remaining: "1", Reset: "10"}, // by IP
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("responses (-want +got):\n%s", diff)
			}
		})
	}
}

// failingStore is a RateStore whose backend is down.
type failingStore struct{}

func (failingStore) AllowN(context.Context, string, syncguard.RateLimit, int) (syncguard.RateResult, error) {
	return syncguard.RateResult{}, driver.NewError(driver.ServiceUnavailable, "down")
}
func (failingStore) ResetRate(context.Context, string) error { return nil }

func TestRateLimitBackendDown(t *testing.T) {
	t.Parallel()
	lim, err := syncguard.NewRateLimiter(failingStore{}, syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []httpmw.RateLimitOption
		want rlResponse
	}{
		{"fail-open default", nil, rlResponse{Status: 204}},
		{"fail-closed", []httpmw.RateLimitOption{httpmw.FailClosed(true)}, rlResponse{Status: 503, RetryAfter: "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var reported error
			mw, err := httpmw.RateLimit(lim, append(tc.opts, httpmw.OnRateLimitError(func(r *http.Request, err error) { reported = err }))...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rlDo(t, mw(okHandler), "")); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if !errors.Is(reported, syncguard.ErrServiceUnavailable) {
				t.Errorf("reported %v", reported)
			}
		})
	}
}

func TestRateLimitMisc(t *testing.T) {
	t.Parallel()
	if _, err := httpmw.RateLimit(nil); !errors.Is(err, syncguard.ErrInvalidArgument) {
		t.Errorf("nil limiter: %v", err)
	}
	lim, _ := syncguard.NewRateLimiter(memory.New(), syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1})
	mw, _ := httpmw.RateLimit(lim, httpmw.KeyFunc(func(*http.Request) string { return "" }))
	for range 3 {
		if got := rlDo(t, mw(okHandler), ""); got != (rlResponse{Status: 204}) {
			t.Errorf("unkeyed request = %+v, want unlimited", got)
		}
	}
	// Retry-After rounds up: 1 h minus a little is 3600.
	mw, _ = httpmw.RateLimit(lim)
	rlDo(t, mw(okHandler), "")
	if got := rlDo(t, mw(okHandler), ""); got.Status != 429 || got.RetryAfter != "3600" || got.Reset != "3600" {
		t.Errorf("refused = %+v", got)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"192.0.2.1:80", "ip:192.0.2.1"},
		{"192.0.2.1", "ip:192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "ip:192.0.2.1"},
		{"[::ffff:c000:201]:80", "ip:192.0.2.1"},
		{"[2001:db8::1]:80", "ip:2001:db8::/64"},
		{"[2001:db8:0:0:ffff:ffff:ffff:ffff]:443", "ip:2001:db8::/64"},
		{"[2001:db8:0:1::1]:443", "ip:2001:db8:0:1::/64"},
		{"[fe80::1%eth0]:80", "ip:fe80::/64"},
		{"[::1]:80", "ip:::/64"},
		{"unix", "ip:unix"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := httpmw.ClientIP(&http.Request{RemoteAddr: tc.addr}); got != tc.want {
			t.Errorf("ClientIP(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
