package httpmw_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/httpmw"
	"github.com/syncguard/syncguard/internal/drivertest"
)

// The tests in this file are the attacks of the security review
// (docs/security.md), each run on every driver; each failed on the code
// before the fix.

func marker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// account is a handler that logs the caller in: its response carries a
// session cookie and the caller's private data.
type account struct{ calls atomic.Int32 }

func (a *account) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	user := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	http.SetCookie(w, &http.Cookie{Name: "session", Value: "SESSION-OF-" + user})
	w.Header().Set("Location", "/accounts/"+user)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"account":%q,"iban":"secret-of-%s"}`, user, user)
}

type captured struct {
	Status   int
	Replayed string
	Cookie   string
	Body     string
}

func send(t *testing.T, h http.Handler, req *http.Request) captured {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return captured{Status: res.StatusCode, Replayed: res.Header.Get("Idempotent-Replayed"),
		Cookie: res.Header.Get("Set-Cookie"), Body: string(b)}
}

func post(host, user, key, contentType, body string) *http.Request {
	req := httptest.NewRequest("POST", "http://"+host+"/accounts", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+user)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", contentType)
	return req
}

// TestAttackCrossClientReplay is finding 1 (high): with the same key, a
// second client must neither read the first one's stored response (cookie,
// body) nor block it with a 422; a replay never carries Set-Cookie.
func TestAttackCrossClientReplay(t *testing.T) {
	t.Parallel()
	if _, err := httpmw.Idempotency(syncguard.New(memory.New())); !errors.Is(err, syncguard.ErrInvalidArgument) {
		t.Errorf("Idempotency without Scope = %v; want InvalidArgument (no shared default scope)", err)
	}
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			mw, err := httpmw.Idempotency(d.NewGuard(), httpmw.Scope(httpmw.ScopeByHeader("Authorization")))
			if err != nil {
				t.Fatal(err)
			}
			a := &account{}
			h := mw(a)
			key := `"` + marker(t) + `"`
			const body = `{"plan":"pro"}`

			alice := send(t, h, post("api.example", "alice", key, "application/json", body))
			mallory := send(t, h, post("evil.example", "mallory", key, "text/plain", body))
			retry := send(t, h, post("api.example", "alice", key, "application/json", body))
			if alice.Status != 201 || !strings.Contains(alice.Cookie, "SESSION-OF-alice") {
				t.Errorf("alice = %+v", alice)
			}
			if strings.Contains(mallory.Body, "alice") || strings.Contains(mallory.Cookie, "alice") || mallory.Replayed != "" {
				t.Errorf("mallory got alice's response: %+v", mallory)
			}
			if retry.Replayed != "true" || !strings.Contains(retry.Body, "secret-of-alice") || retry.Cookie != "" {
				t.Errorf("alice's retry = %+v; want her body replayed without Set-Cookie", retry)
			}

			// The other order: a key sent first by mallory does not make
			// bob's request fail.
			key2 := `"` + marker(t) + `"`
			send(t, h, post("api.example", "mallory", key2, "application/json", body))
			if bob := send(t, h, post("api.example", "bob", key2, "application/json", body)); bob.Status != 201 || bob.Replayed != "" {
				t.Errorf("bob after mallory took his key = %+v; want his own 201", bob)
			}
			// Unidentified clients are refused, not pooled.
			req := post("api.example", "x", `"`+marker(t)+`"`, "application/json", body)
			req.Header.Del("Authorization")
			if got := send(t, h, req); got.Status != http.StatusForbidden {
				t.Errorf("request without credentials = %d; want 403", got.Status)
			}
			if n := a.calls.Load(); n != 4 {
				t.Errorf("handler ran %d times; want 4 (alice, mallory, mallory, bob)", n)
			}
		})
	}
}

// TestAttackNoRawIdentifiersStored is finding 2: neither the scope (a
// user's e-mail) nor the client's key reaches the backend in clear, so
// nothing kept by it (fence counters, their key_debug, records) holds them.
func TestAttackNoRawIdentifiersStored(t *testing.T) {
	t.Parallel()
	m := marker(t)
	email, key := "alice-"+m+"@example.com", "key-"+m
	run := func(t *testing.T, g *syncguard.Guard[syncguard.Fenced]) {
		mw, err := httpmw.Idempotency(g, httpmw.Scope(func(*http.Request) string { return email }))
		if err != nil {
			t.Fatal(err)
		}
		if got := send(t, mw(&account{}), post("api.example", "alice", `"`+key+`"`, "application/json", "{}")); got.Status != 201 {
			t.Fatalf("request = %+v", got)
		}
	}
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		d, ok := drivertest.Redis(t)
		if !ok {
			return
		}
		run(t, syncguard.NewFenced(d))
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{drivertest.RedisAddr()}, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		found, err := drivertest.RedisKeys(context.Background(), c, "*"+m+"*")
		if err != nil {
			t.Fatal(err)
		}
		if len(found) > 0 {
			t.Errorf("Redis keys naming the client: %q", found)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		d, ok := drivertest.Postgres(t)
		if !ok {
			return
		}
		run(t, syncguard.NewFenced(d))
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, drivertest.PostgresURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
			WHERE table_name LIKE 'syncguard%' AND table_schema LIKE 'sgprim_%'`)
		if err != nil {
			t.Fatal(err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) == 0 {
			t.Fatal("no SyncGuard tables found")
		}
		for _, tb := range tables {
			var n int
			// Concurrent tests drop their schemas: a vanished table holds nothing.
			err := conn.QueryRow(ctx, `SELECT count(*) FROM `+tb+` t WHERE t::text LIKE $1`, "%"+m+"%").Scan(&n)
			if err == nil && n > 0 {
				t.Errorf("%s: %d rows name the client", tb, n)
			}
		}
	})
}

// TestAttackHeadersAndSize covers findings 7 and 8: header bytes count
// against MaxResponseBytes; a response that cannot be stored is recorded
// as done, so a client cannot make the handler run twice by making the
// response large or provoking a 5xx; query order does not matter.
func TestAttackHeadersAndSize(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("X-Echo", r.URL.Query().Get("echo"))
				if r.URL.Query().Get("fail") != "" {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				w.WriteHeader(http.StatusCreated)
			})
			mw, err := httpmw.Idempotency(d.NewGuard(), httpmw.Scope(httpmw.ScopeByHeader("Authorization")),
				httpmw.ReplayHeaders("X-Echo"), httpmw.MaxResponseBytes(64<<10))
			if err != nil {
				t.Fatal(err)
			}
			srv := mw(h)
			req := func(target, key string) *http.Request {
				r := httptest.NewRequest("POST", "http://api.example"+target, nil)
				r.Header.Set("Authorization", "Bearer alice")
				r.Header.Set("Idempotency-Key", key)
				return r
			}
			big := strings.Repeat("x", 100<<10)
			steps := []struct {
				name, target, key string
				want              int
				replayed          string
			}{
				{"huge header", "/?echo=" + big, "h", 201, ""},
				{"huge header retry", "/?echo=" + big, "h", 409, ""},
				{"5xx", "/?fail=1", "f", 500, ""},
				{"5xx retry", "/?fail=1", "f", 500, "true"},
				{"query", "/?a=1&b=2", "q", 201, ""},
				{"query reordered", "/?b=2&a=1", "q", 201, "true"},
				{"query changed", "/?b=3&a=1", "q", 422, ""},
			}
			for _, s := range steps {
				got := send(t, srv, req(s.target, s.key))
				if got.Status != s.want || got.Replayed != s.replayed {
					t.Errorf("%s: %d replayed=%q; want %d replayed=%q", s.name, got.Status, got.Replayed, s.want, s.replayed)
				}
			}
			if n := calls.Load(); n != 3 {
				t.Errorf("handler ran %d times; want 3 (once per key)", n)
			}
		})
	}
}

// rlSend sends a request with the X-User-ID header set to id, as a client
// can (the map is set directly: net/http's client would refuse some of
// these bytes, a raw connection does not).
func rlSend(h http.Handler, remote, id string) int {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = remote
	if id != "" {
		r.Header["X-User-Id"] = []string{id}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code
}

// TestAttackRateLimitKeys covers finding 3 and the issue-17 bypasses: no
// client-chosen key escapes the limit (long, invalid UTF-8, NUL, control
// characters, a name that looks like a hashed one), and IPv6 clients are
// counted per /64, IPv4 in any spelling as one address.
func TestAttackRateLimitKeys(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			newMW := func(opts ...httpmw.RateLimitOption) http.Handler {
				lim, err := syncguard.NewRateLimiter(d.Driver, syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1},
					syncguard.WithPrefix("rl:"+marker(t)+":"))
				if err != nil {
					t.Fatal(err)
				}
				mw, err := httpmw.RateLimit(lim, append(opts, httpmw.OnRateLimitError(func(r *http.Request, err error) {
					t.Errorf("limiter error: %v", err)
				}))...)
				if err != nil {
					t.Fatal(err)
				}
				return mw(okHandler)
			}
			byHeader := newMW(httpmw.KeyFunc(func(r *http.Request) string { return r.Header.Get("X-User-Id") }))
			hostile := map[string]string{
				"600 bytes":     strings.Repeat("u", 600),
				"invalid utf8":  "\xff\xfe",
				"nul":           "a\x00b",
				"controls":      "\x01\x02\x1b[31m",
				"hash-like":     "#h:" + strings.Repeat("A", 43),
				"512 of 2-byte": strings.Repeat("é", 256),
			}
			for name, id := range hostile {
				got := []int{rlSend(byHeader, "192.0.2.1:1", id), rlSend(byHeader, "192.0.2.1:1", id), rlSend(byHeader, "192.0.2.1:1", id)}
				if diff := cmp.Diff([]int{204, 429, 429}, got); diff != "" {
					t.Errorf("%s: (-want +got):\n%s", name, diff)
				}
			}
			// Many duplicates of the header: the key function sees the first.
			dup := httptest.NewRequest("GET", "/", nil)
			dup.Header["X-User-Id"] = []string{"dup-user", "other-1", "other-2"}
			dupSend := func() int {
				rec := httptest.NewRecorder()
				byHeader.ServeHTTP(rec, dup.Clone(context.Background()))
				return rec.Code
			}
			if got := []int{dupSend(), dupSend()}; got[1] != 429 {
				t.Errorf("duplicated header: %v; want the second refused", got)
			}

			byIP := newMW()
			var allowed int
			for i := range 40 {
				if rlSend(byIP, fmt.Sprintf("[2001:db8:1:2:%x::%x]:443", i, i+1), "") == 204 {
					allowed++
				}
			}
			if allowed != 1 {
				t.Errorf("40 addresses of one /64: %d allowed; want 1", allowed)
			}
			got := []int{rlSend(byIP, "1.2.3.4:1", ""), rlSend(byIP, "[::ffff:1.2.3.4]:1", ""), rlSend(byIP, "[::ffff:102:304]:1", "")}
			if diff := cmp.Diff([]int{204, 429, 429}, got); diff != "" {
				t.Errorf("one IPv4 address in three spellings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRateLimitFailOpenOnlyOnOutage: fail-open applies to backend
// unavailability only; any other limiter error refuses the request.
func TestRateLimitFailOpenOnlyOnOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code driver.Code
		want int
	}{
		{driver.ServiceUnavailable, 204},
		{driver.NetworkTimeout, 204},
		{driver.InvalidArgument, 503},
		{driver.Internal, 503},
	} {
		lim, err := syncguard.NewRateLimiter(codeStore{code: tc.code}, syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		mw, err := httpmw.RateLimit(lim, httpmw.OnRateLimitError(func(*http.Request, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		if got := rlSend(mw(okHandler), "192.0.2.9:1", ""); got != tc.want {
			t.Errorf("limiter error %v: status %d; want %d", tc.code, got, tc.want)
		}
	}
}

// codeStore fails every call with its code.
type codeStore struct {
	driver.RateStore
	code driver.Code
}

func (s codeStore) AllowN(context.Context, string, syncguard.RateLimit, int) (syncguard.RateResult, error) {
	return syncguard.RateResult{}, driver.NewError(s.code, "failing store")
}

// TestAttackIdempotencyHostileHeaders: hostile Idempotency-Key headers get
// 400 before any backend call, and hostile scope values (the credentials a
// client sends) work as scopes, on every driver: nothing a client sends
// bypasses the middleware or reaches the backend unhashed.
func TestAttackIdempotencyHostileHeaders(t *testing.T) {
	t.Parallel()
	for _, d := range drivertest.Drivers(t) {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			mw, err := httpmw.Idempotency(d.NewGuard(), httpmw.Scope(httpmw.ScopeByHeader("Authorization")))
			if err != nil {
				t.Fatal(err)
			}
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(http.StatusCreated)
			}))
			req := func(keys []string, auth ...string) *http.Request {
				r := httptest.NewRequest("POST", "http://api.example/x", nil)
				r.Header["Idempotency-Key"] = keys
				r.Header["Authorization"] = auth
				return r
			}
			for name, keys := range map[string][]string{
				"300 bytes":    {strings.Repeat("k", 300)},
				"invalid utf8": {"\xff\xfe"},
				"nul":          {"\"a\x00b\""},
				"controls":     {"\"a\x1b[31m\""},
				"duplicates":   {"\"a\"", "\"a\"", "\"a\""},
				"empty":        {""},
			} {
				if got := send(t, h, req(keys, "Bearer x")); got.Status != http.StatusBadRequest {
					t.Errorf("key %s: %d; want 400", name, got.Status)
				}
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("handler ran %d times for malformed keys", n)
			}
			for name, auth := range map[string][]string{
				"10 KiB":       {"Bearer " + strings.Repeat("t", 10<<10)},
				"nul":          {"Bearer a\x00b"},
				"invalid utf8": {"Bearer \xff\xfe"},
				"duplicates":   {"Bearer a", "Bearer b"},
			} {
				key := `"` + marker(t) + `"`
				first, retry := send(t, h, req([]string{key}, auth...)), send(t, h, req([]string{key}, auth...))
				if first.Status != 201 || retry.Status != 201 || retry.Replayed != "true" {
					t.Errorf("scope %s: %+v then %+v; want 201 then its replay", name, first, retry)
				}
			}
		})
	}
}
