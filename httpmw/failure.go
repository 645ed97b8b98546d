package httpmw

import (
	"log/slog"
	"net/http"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// failure is how a limiting middleware answers its backend's errors.
type failure struct {
	failClosed bool
	onError    func(*http.Request, error)
	title      string // of the 503 problem
}

// warnTo returns the default error handler: a Warn record of what failed,
// with the error and its code but never the key.
func warnTo(logger *slog.Logger, what string) func(*http.Request, error) {
	if logger == nil {
		logger = slog.Default()
	}
	return func(r *http.Request, err error) {
		logger.Warn("httpmw: "+what+" backend error",
			slog.String("error", err.Error()),
			slog.String("code", driver.CodeOf(err).String()))
	}
}

// handle deals with err of the backend call for r and reports whether it
// answered the request: nothing for a client that is gone, 503 with
// Retry-After: 1 when failing closed or for an error that is not the
// backend's unavailability (so nothing a client sends can switch the
// limit off); otherwise the request may pass (fail-open).
func (f failure) handle(w http.ResponseWriter, r *http.Request, err error) bool {
	if r.Context().Err() != nil {
		return true // the client is gone
	}
	f.onError(r, err)
	if f.failClosed || !syncguard.IsUnavailable(err) {
		w.Header().Set(HeaderRetryAfter, "1")
		problem(w, http.StatusServiceUnavailable, f.title, "")
		return true
	}
	return false
}
