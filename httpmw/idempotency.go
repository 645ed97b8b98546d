package httpmw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// HeaderIdempotencyKey is the request header that carries the key.
const HeaderIdempotencyKey = "Idempotency-Key"

// DefaultReplayHeader is the response header set to "true" on a replayed
// response.
const DefaultReplayHeader = "Idempotent-Replayed"

// MaxKeyLength is the longest idempotency key accepted, in bytes.
const MaxKeyLength = 255

// Defaults of the idempotency middleware.
const (
	DefaultMaxRequestBytes   = 1 << 20
	DefaultMaxResponseBytes  = 1 << 20
	DefaultIdempotencyPrefix = "idem:"
)

// IdempotencyOption configures [Idempotency].
type IdempotencyOption func(*idemConfig)

type idemConfig struct {
	methods     map[string]bool
	required    bool
	scope       func(*http.Request) string
	maxReq      int64
	maxResp     int
	replay      string
	store       func(status int) bool
	fingerprint func(r *http.Request, body []byte) string
	onceOpts    []syncguard.Option
	onError     func(*http.Request, error)
	logger      *slog.Logger
	replayHdr   map[string]bool
	err         error
}

// Methods sets the request methods the middleware applies to (default
// POST and PATCH). Requests with other methods pass through untouched.
func Methods(methods ...string) IdempotencyOption {
	return func(c *idemConfig) {
		c.methods = make(map[string]bool, len(methods))
		for _, m := range methods {
			c.methods[strings.ToUpper(m)] = true
		}
	}
}

// KeyRequired sets whether a request without an Idempotency-Key header is
// refused with 400 Bad Request (default true). When false, such requests
// pass through without idempotency.
func KeyRequired(on bool) IdempotencyOption {
	return func(c *idemConfig) { c.required = on }
}

// Scope sets the function that names the client a request belongs to,
// typically the authenticated account or API token (see [ScopeByHeader]).
// It is required: keys are chosen by clients, so without a scope any client
// that learns or guesses another's key would be answered with the other
// client's stored response. The same key under two scopes names two
// operations. A request whose scope is "" is refused with 403 Forbidden;
// authenticate before this middleware. An application that really wants
// one scope for everybody says so with a function returning a constant.
//
// The scope and the key are stored only as a SHA-256 digest.
func Scope(fn func(*http.Request) string) IdempotencyOption {
	return func(c *idemConfig) {
		if fn == nil {
			c.fail("Scope must not be nil")
		}
		c.scope = fn
	}
}

// ScopeByHeader returns a scope function for [Scope] that scopes keys by
// the value of the request header name, such as "Authorization" or an API
// key header: clients with different credentials never share a key. It
// returns "" (refused with 403) for a request without the header.
func ScopeByHeader(name string) func(*http.Request) string {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		vs := r.Header.Values(name)
		if len(vs) == 0 || (len(vs) == 1 && vs[0] == "") {
			return ""
		}
		return strings.Join(vs, "\x00")
	}
}

// MaxRequestBytes bounds the request body the middleware reads to
// fingerprint the request (default 1 MiB); a larger body is refused with
// 413 Content Too Large.
func MaxRequestBytes(n int64) IdempotencyOption {
	return func(c *idemConfig) {
		if n <= 0 {
			c.fail("MaxRequestBytes must be positive")
		}
		c.maxReq = n
	}
}

// MaxResponseBytes bounds the response that is stored for replay: the body
// plus the replayed headers' names and values (default 1 MiB). A larger
// response is streamed to the client and recorded as completed but not
// replayable: a retry with the same key gets 409 Conflict ("Request
// already processed") and does not run the handler again.
func MaxResponseBytes(n int) IdempotencyOption {
	return func(c *idemConfig) {
		if n <= 0 {
			c.fail("MaxResponseBytes must be positive")
		}
		c.maxResp = n
	}
}

// ReplayHeader sets the response header that marks a replayed response
// with the value "true" (default "Idempotent-Replayed").
func ReplayHeader(name string) IdempotencyOption {
	return func(c *idemConfig) {
		if name == "" {
			c.fail("ReplayHeader must not be empty")
		}
		c.replay = http.CanonicalHeaderKey(name)
	}
}

// StoreStatus decides which responses are stored for replay, by status
// code. The default stores every status, server errors included (as
// Stripe does): a handler that failed after a side effect must not run
// again for a retry, and a client that can provoke a 5xx must not be able
// to switch idempotency off. Exclude a status only if your handler answers
// it exclusively when it has changed nothing, e.g.
// StoreStatus(func(s int) bool { return s != http.StatusServiceUnavailable }):
// a response that is not stored lets the retry run the handler again.
func StoreStatus(fn func(status int) bool) IdempotencyOption {
	return func(c *idemConfig) {
		if fn == nil {
			c.fail("StoreStatus must not be nil")
		}
		c.store = fn
	}
}

// FingerprintFunc replaces the request fingerprint, which detects a key
// reused for a different request (422 Unprocessable Content). The default
// is [Fingerprint].
func FingerprintFunc(fn func(r *http.Request, body []byte) string) IdempotencyOption {
	return func(c *idemConfig) {
		if fn == nil {
			c.fail("FingerprintFunc must not be nil")
		}
		c.fingerprint = fn
	}
}

// IdempotencyOnceOptions passes options to the underlying
// [syncguard.OncePerKey], such as [syncguard.WithRetention] (how long a
// response is replayed; default 24h), [syncguard.WithPrefix] (default
// "idem:") or [syncguard.WithAcquireOptions] (the lock's TTL).
func IdempotencyOnceOptions(opts ...syncguard.Option) IdempotencyOption {
	return func(c *idemConfig) { c.onceOpts = append(c.onceOpts, opts...) }
}

// ReplayHeaders adds response headers to those stored and replayed. By
// default only representation and caching metadata is replayed:
// Content-Type, Content-Language, Content-Location, Content-Disposition,
// Location, ETag, Last-Modified, Cache-Control, Expires, Vary and Link.
// Every other header, Set-Cookie included, goes to the first response
// only. Set-Cookie, Authorization headers and hop-by-hop headers cannot be
// added (InvalidArgument): a replay may reach another connection of the
// client, and must never hand out a session.
func ReplayHeaders(names ...string) IdempotencyOption {
	return func(c *idemConfig) {
		for _, n := range names {
			k := http.CanonicalHeaderKey(n)
			if neverReplay[k] || k == "" {
				c.fail("ReplayHeaders: " + strconv.Quote(n) + " must never be replayed")
				continue
			}
			c.replayHdr[k] = true
		}
	}
}

// defaultReplay lists the headers replayed by default.
var defaultReplay = []string{
	"Content-Type", "Content-Language", "Content-Location", "Content-Disposition",
	"Location", "Etag", "Last-Modified", "Cache-Control", "Expires", "Vary", "Link",
}

// neverReplay lists headers that are never stored: credentials and
// hop-by-hop headers (RFC 9110 7.6.1), and those the middleware sets.
var neverReplay = map[string]bool{
	"Set-Cookie": true, "Set-Cookie2": true, "Authorization": true, "Proxy-Authorization": true,
	"Www-Authenticate": true, "Proxy-Authenticate": true, "Authentication-Info": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Date": true,
	"Strict-Transport-Security": true, "Clear-Site-Data": true,
}

// IdempotencyLogger sets the logger of the default error handler (default
// slog.Default()).
func IdempotencyLogger(l *slog.Logger) IdempotencyOption {
	return func(c *idemConfig) { c.logger = l }
}

// OnIdempotencyError sets the handler of backend failures (the default
// logs them at Warn level, without the key, to [IdempotencyLogger]). The
// middleware answers a request whose state it cannot read with 503
// Service Unavailable (it fails closed: running the handler without
// knowing whether the key was processed could repeat the operation); a
// failure to store a response after the handler ran is only reported.
func OnIdempotencyError(fn func(r *http.Request, err error)) IdempotencyOption {
	return func(c *idemConfig) { c.onError = fn }
}

func (c *idemConfig) fail(msg string) {
	if c.err == nil {
		c.err = driver.NewError(driver.InvalidArgument, "httpmw: "+msg)
	}
}

// storedResponse is what the middleware stores per key. Done marks a
// response that was sent but could not be stored (too large): a retry is
// refused instead of running the handler again.
type storedResponse struct {
	Fingerprint string      `json:"f"`
	Status      int         `json:"s"`
	Header      http.Header `json:"h,omitempty"`
	Body        []byte      `json:"b,omitempty"`
	Done        bool        `json:"n,omitempty"`
}

// errNotStored tells OncePerKey to record nothing for this run.
var errNotStored = errors.New("httpmw: response not stored")

// Idempotency returns a middleware that makes requests with an
// Idempotency-Key header idempotent, following the IETF draft
// (draft-ietf-httpapi-idempotency-key-header), across every process that
// shares g's backend:
//
//   - Keys are scoped per client by [Scope], which is required.
//   - The first request with a key runs the handler. Its status, replayable
//     headers ([ReplayHeaders]) and body are stored and replayed to every
//     later request of the client with the same key — with the header
//     "Idempotent-Replayed: true" — until the retention ends (24h).
//   - A request with the key while the first one still runs gets 409
//     Conflict with Retry-After; the client retries later.
//   - A request that reuses a key for a different request (method, host,
//     path, query parameters, content type or body differ; see
//     [Fingerprint]) gets 422 Unprocessable Content.
//   - A request without the header gets 400 Bad Request ([KeyRequired]),
//     as does a malformed key: the header is a Structured Field string
//     ("…", RFC 8941) of 1 to 255 characters; a bare token such as an
//     unquoted UUID is accepted too. A request whose scope is "" gets 403.
//   - When the backend cannot be asked, the answer is 503 Service
//     Unavailable with Retry-After; the handler does not run.
//   - Requests with other methods than POST and PATCH ([Methods]) pass
//     through.
//
// The handler runs under a lease of the key's lock and receives a request
// whose context is cancelled if that lease is lost. Idempotency fails with
// InvalidArgument for invalid options or a missing [Scope]; it only
// compiles for drivers with fencing tokens. docs/security.md describes what
// it protects against and what the application must still do.
func Idempotency[C driver.Fenced](g *syncguard.Guard[C], opts ...IdempotencyOption) (func(http.Handler) http.Handler, error) {
	cfg := idemConfig{
		methods:     map[string]bool{http.MethodPost: true, http.MethodPatch: true},
		required:    true,
		maxReq:      DefaultMaxRequestBytes,
		maxResp:     DefaultMaxResponseBytes,
		replay:      DefaultReplayHeader,
		store:       func(int) bool { return true },
		fingerprint: Fingerprint,
		replayHdr:   make(map[string]bool),
	}
	for _, h := range defaultReplay {
		cfg.replayHdr[h] = true
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err == nil && cfg.scope == nil {
		cfg.fail("Idempotency requires a Scope (e.g. httpmw.Scope(httpmw.ScopeByHeader(\"Authorization\"))): " +
			"without one, any client that knows a key would be answered with another client's response")
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if cfg.onError == nil {
		logger := cfg.logger
		if logger == nil {
			logger = slog.Default()
		}
		cfg.onError = func(r *http.Request, err error) {
			logger.Warn("httpmw: idempotency backend error",
				slog.String("error", err.Error()),
				slog.String("code", driver.CodeOf(err).String()),
				slog.String("method", r.Method))
		}
	}
	onceOpts := append([]syncguard.Option{syncguard.WithPrefix(DefaultIdempotencyPrefix)}, cfg.onceOpts...)
	onceOpts = append(onceOpts, syncguard.WithNonBlocking())
	once, err := syncguard.NewOncePerKey[storedResponse](g, onceOpts...)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg.serve(once, next, w, r)
		})
	}, nil
}

// onceDoer is the OncePerKey method the middleware needs.
type onceDoer interface {
	Do(ctx context.Context, key string, fn func(ctx context.Context) (storedResponse, error)) (storedResponse, error)
}

// scopedKey is the name a client's key is stored under: the
// [driver.HashedKey] digest (the first 16 bytes of SHA-256) of the
// length-prefixed scope and key, so that no scope/key pair
// aliases another and no raw client identifier reaches the backend.
func scopedKey(scope, key string) string {
	return driver.HashedKey(strconv.Itoa(len(scope)) + ":" + scope + ":" + key)
}

func (c *idemConfig) serve(once onceDoer, next http.Handler, w http.ResponseWriter, r *http.Request) {
	if !c.methods[r.Method] {
		next.ServeHTTP(w, r)
		return
	}
	values := r.Header.Values(HeaderIdempotencyKey)
	switch {
	case len(values) == 0 && !c.required:
		next.ServeHTTP(w, r)
		return
	case len(values) == 0:
		problem(w, http.StatusBadRequest, "Idempotency-Key is missing",
			"This operation is idempotent and requires the Idempotency-Key header.")
		return
	case len(values) > 1:
		problem(w, http.StatusBadRequest, "Idempotency-Key is malformed", "The Idempotency-Key header must appear once.")
		return
	}
	key, err := ParseKey(values[0])
	if err != nil {
		problem(w, http.StatusBadRequest, "Idempotency-Key is malformed", err.Error())
		return
	}
	scope := c.scope(r)
	if scope == "" {
		problem(w, http.StatusForbidden, "Client not identified",
			"Idempotent requests are accepted only from identified clients.")
		return
	}
	body, err := readBody(r, c.maxReq)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			problem(w, http.StatusRequestEntityTooLarge, "Request body too large",
				"The request body exceeds "+strconv.FormatInt(c.maxReq, 10)+" bytes.")
			return
		}
		problem(w, http.StatusBadRequest, "Request body unreadable", "")
		return
	}
	fp := c.fingerprint(r, body)

	var rec *recorder
	res, err := once.Do(r.Context(), scopedKey(scope, key), func(ctx context.Context) (storedResponse, error) {
		rec = newRecorder(w, c.maxResp)
		r2 := r.WithContext(ctx)
		r2.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(rec, r2)
		rec.finish()
		if !c.store(rec.status) {
			return storedResponse{}, errNotStored
		}
		if rec.streamed {
			return storedResponse{Fingerprint: fp, Status: rec.status, Done: true}, nil
		}
		hdr, size := c.replayable(rec.header)
		if size+rec.buf.Len() > c.maxResp {
			return storedResponse{Fingerprint: fp, Status: rec.status, Done: true}, nil
		}
		return storedResponse{Fingerprint: fp, Status: rec.status, Header: hdr, Body: rec.buf.Bytes()}, nil
	})
	if rec != nil { // this request ran the handler: send its response
		if err != nil && !errors.Is(err, errNotStored) {
			c.onError(r, err)
		}
		rec.flush()
		return
	}
	switch {
	case errors.Is(err, syncguard.ErrInProgress):
		w.Header().Set(HeaderRetryAfter, "1")
		problem(w, http.StatusConflict, "Request in progress",
			"A request with this Idempotency-Key is still being processed; retry later.")
	case err != nil:
		c.onError(r, err)
		if errors.Is(err, syncguard.ErrInvalidArgument) {
			problem(w, http.StatusBadRequest, "Idempotency-Key is unusable", "")
			return
		}
		w.Header().Set(HeaderRetryAfter, "1")
		problem(w, http.StatusServiceUnavailable, "Idempotency state unavailable", "")
	case res.Fingerprint != fp:
		problem(w, http.StatusUnprocessableEntity, "Idempotency-Key reused",
			"This Idempotency-Key was used for a different request.")
	case res.Done:
		problem(w, http.StatusConflict, "Request already processed",
			"The request with this Idempotency-Key was processed, but its response was too large to store; it cannot be replayed.")
	default:
		h := w.Header()
		for k, v := range res.Header {
			if c.replayHdr[k] { // records written with another allowlist
				h[k] = append([]string(nil), v...)
			}
		}
		h.Set(c.replay, "true")
		h.Set("Content-Length", strconv.Itoa(len(res.Body)))
		w.WriteHeader(res.Status)
		_, _ = w.Write(res.Body)
	}
}

// replayable returns the headers of h that are replayed, and their size
// in bytes (names and values).
func (c *idemConfig) replayable(h http.Header) (http.Header, int) {
	out := make(http.Header)
	size := 0
	for k, v := range h {
		if !c.replayHdr[k] {
			continue
		}
		out[k] = v
		for _, s := range v {
			size += len(k) + len(s) + 4 // ": " and CRLF, as on the wire
		}
	}
	return out, size
}

var errBodyTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes of r's body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	defer r.Body.Close()
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// Fingerprint is the default request fingerprint: the hex SHA-256 of the
// method, the Host, the escaped path, the query parameters in canonical
// order (sorted by name, each name's values in their order; a query that
// does not parse is taken as sent), the Content-Type and the SHA-256 of
// body. So a retry whose query lists the same parameters in another order
// matches, and the same key sent to another host or with another media
// type does not.
func Fingerprint(r *http.Request, body []byte) string {
	bh := sha256.Sum256(body)
	h := sha256.New()
	for _, part := range []string{r.Method, strings.ToLower(r.Host), r.URL.EscapedPath(), canonicalQuery(r.URL.RawQuery),
		strings.Join(r.Header.Values("Content-Type"), ",")} {
		io.WriteString(h, strconv.Itoa(len(part)))
		h.Write([]byte{':'})
		io.WriteString(h, part)
	}
	h.Write(bh[:])
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalQuery returns raw with its parameters sorted by name.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return "!" + raw
	}
	return v.Encode()
}

// ParseKey parses an Idempotency-Key header value. The draft defines it as
// a Structured Field string (RFC 8941): a double-quoted sequence of
// printable ASCII in which only \" and \\ are escapes. A bare token
// (printable ASCII without spaces, quotes, backslashes, commas or
// semicolons, such as an unquoted UUID) is accepted too, since many clients
// send one. Surrounding spaces are ignored. The key must be 1 to
// [MaxKeyLength] bytes long.
func ParseKey(v string) (string, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", errors.New("the Idempotency-Key header is empty")
	}
	var key string
	if v[0] == '"' {
		var b strings.Builder
		closed := false
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '\\':
				i++
				if i == len(v) || (v[i] != '"' && v[i] != '\\') {
					return "", errors.New("the Idempotency-Key string has an invalid escape")
				}
				b.WriteByte(v[i])
			case c == '"':
				if i != len(v)-1 {
					return "", errors.New("the Idempotency-Key header has data after the string")
				}
				closed = true
			case c < 0x20 || c > 0x7e:
				return "", errors.New("the Idempotency-Key string has a character outside printable ASCII")
			default:
				b.WriteByte(c)
			}
			if b.Len() > MaxKeyLength {
				return "", errors.New("the Idempotency-Key is longer than 255 characters")
			}
		}
		if !closed {
			return "", errors.New("the Idempotency-Key string is not terminated")
		}
		key = b.String()
	} else {
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == ',' || c == ';' {
				return "", errors.New("the Idempotency-Key must be a quoted string or a token")
			}
		}
		key = v
	}
	switch {
	case key == "":
		return "", errors.New("the Idempotency-Key is empty")
	case len(key) > MaxKeyLength:
		return "", errors.New("the Idempotency-Key is longer than 255 characters")
	}
	return key, nil
}

// recorder captures the handler's response up to a size limit; beyond it,
// it switches to streaming to the real writer.
type recorder struct {
	w        http.ResponseWriter
	header   http.Header
	status   int
	wrote    bool
	buf      bytes.Buffer
	limit    int
	streamed bool
}

func newRecorder(w http.ResponseWriter, limit int) *recorder {
	return &recorder{w: w, header: make(http.Header), limit: limit}
}

func (rc *recorder) Header() http.Header {
	if rc.streamed {
		return rc.w.Header()
	}
	return rc.header
}

func (rc *recorder) WriteHeader(status int) {
	if rc.wrote {
		return
	}
	if status < 100 || status > 999 {
		panic("httpmw: invalid WriteHeader code " + strconv.Itoa(status))
	}
	if status < 200 { // informational: not part of the stored response
		return
	}
	rc.wrote, rc.status = true, status
}

func (rc *recorder) Write(p []byte) (int, error) {
	if !rc.wrote {
		rc.WriteHeader(http.StatusOK)
	}
	if rc.streamed {
		return rc.w.Write(p)
	}
	if rc.buf.Len()+len(p) > rc.limit {
		rc.startStreaming()
		return rc.w.Write(p)
	}
	return rc.buf.Write(p)
}

// startStreaming sends the captured header and body to the client and
// passes later writes straight through.
func (rc *recorder) startStreaming() {
	rc.streamed = true
	h := rc.w.Header()
	for k, v := range rc.header {
		h[k] = v
	}
	rc.w.WriteHeader(rc.status)
	_, _ = rc.w.Write(rc.buf.Bytes())
	rc.buf = bytes.Buffer{}
}

// finish completes a response the handler left without a status.
func (rc *recorder) finish() {
	if !rc.wrote {
		rc.wrote, rc.status = true, http.StatusOK
	}
}

// flush sends a captured response to the client (a streamed one is
// already there).
func (rc *recorder) flush() {
	if rc.streamed {
		return
	}
	rc.finish()
	h := rc.w.Header()
	for k, v := range rc.header {
		h[k] = v
	}
	if h.Get("Content-Length") == "" {
		h.Set("Content-Length", strconv.Itoa(rc.buf.Len()))
	}
	rc.w.WriteHeader(rc.status)
	_, _ = rc.w.Write(rc.buf.Bytes())
}
