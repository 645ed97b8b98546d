package redis

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// Compile-time checks of the interfaces *Driver implements.
var (
	_ driver.Driver[Capabilities] = (*Driver)(nil)
	_ driver.Backend              = (*Driver)(nil)
	_ driver.ReleaseWatcher       = (*Driver)(nil)
	_ driver.HandoffWatcher       = (*Driver)(nil)
)

// Capabilities is the capability type of the Redis driver: fencing
// tokens, the Redis server's clock (TIME, read inside every script) as time
// authority, first-come-first-served hand-off and state shared by every
// process.
type Capabilities struct {
	driver.WithFencing
	driver.WithServerTime
	driver.WithFairHandoff
	driver.WithCrossProcess
}

// Name returns "redis".
func (Capabilities) Name() string { return "redis" }

// DefaultKeyPrefix is the key prefix used when [WithKeyPrefix] is not given.
const DefaultKeyPrefix = "syncguard"

// DefaultCallTimeout bounds every request the driver makes when
// [WithCallTimeout] is not given.
const DefaultCallTimeout = 3 * time.Second

// Option configures a [Driver]; pass options to [New].
type Option func(*options)

type options struct {
	prefix            string
	cleanupInIsLocked bool
	logger            *slog.Logger
	callTimeout       time.Duration
}

// WithKeyPrefix sets the prefix of every key the driver writes (default
// "syncguard"). Trailing colons are ignored; an empty prefix is allowed. The
// prefix must not contain '{' or '}' (it would change the hash slot of the
// keys), must not contain "fence:" or end with "fence" (the TypeScript SyncGuard's prefix rule, kept although the type segment already keeps namespaces apart: docs/contract.md#keys), and
// must leave room for keys: at most 400 bytes.
func WithKeyPrefix(prefix string) Option {
	return func(o *options) { o.prefix = prefix }
}

// WithCleanupInIsLocked makes IsLocked delete lock data that is more than
// [driver.CleanupGuardMs] past its expiry, in the same atomic script.
// It never changes IsLocked's result and never touches fence counters.
// Redis already drops lock keys [driver.Tolerance] after their expiry
// (PX), so this matters only for records written without an expiry by
// other tools. Default false.
func WithCleanupInIsLocked(enabled bool) Option {
	return func(o *options) { o.cleanupInIsLocked = enabled }
}

// WithLogger sets the logger for the driver's warnings: a fence counter
// passing [driver.FenceWarn]. Warnings carry the key's hash, never the
// key. The default is [slog.Default].
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithCallTimeout bounds every request the driver makes (default
// [DefaultCallTimeout]), whatever the caller's context: a call whose
// context has no deadline, or a later one, returns NetworkTimeout after d
// when Redis does not answer (stopped, unreachable, or too slow), and
// ServiceUnavailable earlier when the connection is refused. Retries inside
// rueidis (it retries read-only commands while the server is away) happen
// only within d. The caller's own deadline still applies when it is
// earlier. Values ≤ 0 are rejected by [New].
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}

// Driver is the Redis driver. It is safe for concurrent use. Create it with
// [New]; it does not own the client (Close the client yourself), but a
// driver with active release watchers should be closed with [Driver.Close]
// first.
type Driver struct {
	client    rueidis.Client
	prefix    string
	bodyLimit int
	cleanup   bool
	logger    *slog.Logger
	s         *scripts
	hub       *watchHub
	bg        sync.WaitGroup // background releases of unknown outcome
	ttlStr    atomic.Pointer[ttlString]
	// inbox names this driver's grant channels (see watch.go).
	inbox string
	// waiterLiveMs is the PX of a queued waiter's liveness marker
	// (waiterLive; tests shorten it).
	waiterLiveMs string
	// abandonGrace is how long a request whose caller gave up may still
	// run (see exec.go; tests shorten it).
	abandonGrace time.Duration
	// callTimeout bounds every request (WithCallTimeout).
	callTimeout time.Duration
	// bounds supplies the call bound's channels (exec.go).
	bounds boundClock
	// work hands script calls to idle workers (exec.go).
	work chan *call
	// closed ends with Close: it cancels abandoned requests (exec.go).
	closed     context.Context
	closeCalls context.CancelFunc
}

// New returns a driver that stores locks through client, which may be a
// single-node, Sentinel or Cluster rueidis client (rueidis picks the mode
// from its ClientOption). The driver needs Redis 7.0 or newer (SPUBLISH,
// scripts with effects replication).
//
// New fails with an InvalidArgument [driver.LockError] for a nil client
// or an invalid option.
func New(client rueidis.Client, opts ...Option) (*Driver, error) {
	if client == nil {
		return nil, driver.NewError(driver.InvalidArgument, "redis: client must not be nil")
	}
	o := options{prefix: DefaultKeyPrefix, callTimeout: DefaultCallTimeout}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	prefix, err := validatePrefix(o.prefix)
	if err != nil {
		return nil, err
	}
	if o.callTimeout <= 0 {
		return nil, driver.NewError(driver.InvalidArgument, "redis: call timeout must be positive")
	}
	sep := 0
	if prefix != "" {
		sep = 1
	}
	d := &Driver{
		client:    client,
		prefix:    prefix,
		bodyLimit: storageLimit - len(prefix) - sep - layoutOverhead,
		cleanup:   o.cleanupInIsLocked,
		logger:    o.logger,
		s:         newScripts(),

		inbox:        newInbox(),
		waiterLiveMs: formatInt(waiterLive.Milliseconds()),
		abandonGrace: abandonGrace,
		callTimeout:  o.callTimeout,
		work:         make(chan *call),
	}
	d.closed, d.closeCalls = context.WithCancel(context.Background())
	d.hub = newWatchHub(d)
	return d, nil
}

// maxPrefixLen leaves at least 512 + slack bytes for the key body.
const maxPrefixLen = 400

func validatePrefix(p string) (string, error) {
	p = strings.TrimRight(p, ":")
	switch {
	case strings.ContainsAny(p, "{}"):
		return "", driver.NewError(driver.InvalidArgument, "redis: key prefix must not contain '{' or '}'")
	case strings.Contains(p, "fence:") || strings.HasSuffix(p, "fence"):
		return "", driver.NewError(driver.InvalidArgument, "redis: key prefix must not contain \"fence:\" or end with \"fence\"")
	case len(p) > maxPrefixLen:
		return "", driver.NewError(driver.InvalidArgument, "prefix exceeds backend limit")
	}
	return p, nil
}

// Capabilities returns the driver's capability type.
func (d *Driver) Capabilities() Capabilities { return Capabilities{} }

// Client returns the rueidis client the driver uses.
func (d *Driver) Client() rueidis.Client { return d.client }

// KeyPrefix returns the key prefix in use (without trailing colons).
func (d *Driver) KeyPrefix() string { return d.prefix }

// Close ends the driver's release subscriptions (watchers still waiting
// are woken), cancels requests whose callers gave up on them (their
// context ended or the call timeout passed) and waits for background
// clean-up releases to finish (each is bounded by 5 s). It does not close
// the client. Operations other than WatchRelease keep working after Close.
func (d *Driver) Close() {
	d.closeCalls()
	d.hub.close()
	d.bg.Wait()
}
