// Package httpmw provides net/http middlewares built on SyncGuard's
// primitives:
//
//   - [Idempotency] makes unsafe requests (POST, PATCH) idempotent following
//     the IETF Idempotency-Key header draft
//     (draft-ietf-httpapi-idempotency-key-header): the first request with a
//     key runs the handler, its response is stored with
//     [syncguard.OncePerKey] and replayed to every retry, across all
//     processes that share the backend.
//   - [RateLimit] enforces a [syncguard.RateLimiter] per client key and
//     sends the RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset and
//     Retry-After headers.
//
// Both are ordinary func(http.Handler) http.Handler values, so they compose
// with any router:
//
//	idem, err := httpmw.Idempotency(g, httpmw.Scope(accountOf))
//	...
//	mux.Handle("POST /payments", rl(idem(paymentsHandler)))
//
// Errors of the middleware itself are answered with RFC 9457 problem
// details (application/problem+json).
package httpmw

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problem writes an RFC 9457 problem details response.
func problem(w http.ResponseWriter, status int, title, detail string) {
	body, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"about:blank", title, status, detail})
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
