package firestore

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"cloud.google.com/go/firestore"
)

// Compile-time checks of the interfaces *Driver implements.
var (
	_ driver.Driver[Capabilities] = (*Driver)(nil)
	_ driver.Backend              = (*Driver)(nil)
	_ driver.ReleaseWatcher       = (*Driver)(nil)
)

// Capabilities is the capability type of the Firestore driver: fencing
// tokens and state shared by every process. Expiry is judged by each
// client's clock (keep clocks synchronised), and waiters poll: it has
// neither [driver.ServerTime] nor [driver.FairHandoff].
type Capabilities struct {
	driver.WithFencing
	driver.WithCrossProcess
}

// Name returns "firestore".
func (Capabilities) Name() string { return "firestore" }

// Default collection names.
const (
	DefaultCollection       = "locks"
	DefaultFenceCollection  = "fence_counters"
	DefaultRecordCollection = "syncguard_records"
	DefaultRateCollection   = "syncguard_rate"
	DefaultPermitCollection = "syncguard_permits"
)

// DefaultMaxAttempts is the number of times a transaction is attempted
// when Firestore aborts it for contention.
const DefaultMaxAttempts = 5

// Option configures a [Driver]; pass options to [New].
type Option func(*options)

type options struct {
	collection, fenceCollection, recordCollection, rateCollection, permitCollection string
	cleanupInIsLocked                                                               bool
	maxAttempts                                                                     int
	logger                                                                          *slog.Logger
	now                                                                             func() time.Time
	callTimeout                                                                     time.Duration
}

// WithCollections sets the lock and fence-counter collections (defaults
// "locks" and "fence_counters"; an empty name keeps the default). They must
// differ and must not contain '/'.
func WithCollections(locks, fences string) Option {
	return func(o *options) {
		setName(&o.collection, locks)
		setName(&o.fenceCollection, fences)
	}
}

// WithRecordCollection sets the collection of fenced records (default
// "syncguard_records"; an empty name keeps it).
func WithRecordCollection(name string) Option {
	return func(o *options) { setName(&o.recordCollection, name) }
}

// WithRateCollection sets the collection of rate-limit state (default
// "syncguard_rate"; an empty name keeps it).
func WithRateCollection(name string) Option {
	return func(o *options) { setName(&o.rateCollection, name) }
}

// WithPermitCollection sets the collection of semaphore permits, one
// document per key (default "syncguard_permits"; an empty name keeps it).
func WithPermitCollection(name string) Option {
	return func(o *options) { setName(&o.permitCollection, name) }
}

// setName sets *dst to a collection name given to an option; an empty name
// keeps the default.
func setName(dst *string, name string) {
	if name != "" {
		*dst = name
	}
}

// WithCleanupInIsLocked makes IsLocked delete a lock document that is more
// than [driver.CleanupGuardMs] past its expiry, in a background
// transaction that re-checks the expiry. It never changes IsLocked's result
// and never touches fence counters. Default false.
func WithCleanupInIsLocked(enabled bool) Option {
	return func(o *options) { o.cleanupInIsLocked = enabled }
}

// WithMaxAttempts sets how many times a transaction is attempted when
// Firestore aborts it for contention (default 5, set explicitly on every
// transaction). A transaction aborted on every attempt fails with
// ServiceUnavailable.
func WithMaxAttempts(n int) Option {
	return func(o *options) { o.maxAttempts = n }
}

// WithLogger sets the logger for the driver's warnings (duplicate lock
// documents, fence counters passing [driver.FenceWarn]); they carry key
// hashes, never keys. The default is [slog.Default].
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// DefaultCallTimeout bounds every operation of the driver when
// [WithCallTimeout] is not given.
const DefaultCallTimeout = 5 * time.Second

// WithCallTimeout bounds every operation of the driver (default
// [DefaultCallTimeout]), whatever the caller's context: an operation whose
// context has no deadline, or a later one, fails with NetworkTimeout after
// d when Firestore does not answer (unreachable, or too slow). The SDK
// retries Unavailable replies, and a transaction its aborted attempts, only
// within d. The caller's own deadline still applies when it is earlier.
// Values ≤ 0 make [New] fail with InvalidArgument.
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout = d }
}

// Driver is the Firestore driver. It is safe for concurrent use. It does
// not own the client; call [Driver.Close] before closing the client to end
// background work (release watchers, cleanup transactions).
type Driver struct {
	client                                 *firestore.Client
	locks, fences, records, rates, permits *firestore.CollectionRef
	lockName, fenceName                    string
	cleanup                                bool
	maxAttempts                            int
	logger                                 *slog.Logger
	now                                    func() time.Time
	bgCtx                                  context.Context
	bgCancel                               context.CancelFunc
	bg                                     sync.WaitGroup
	stripes                                *stripes
	callTimeout                            time.Duration
}

// New returns a driver over client. It fails with an InvalidArgument
// [driver.LockError] for a nil client or invalid options.
func New(client *firestore.Client, opts ...Option) (*Driver, error) {
	if client == nil {
		return nil, driver.NewError(driver.InvalidArgument, "firestore: client must not be nil")
	}
	o := options{
		collection:       DefaultCollection,
		fenceCollection:  DefaultFenceCollection,
		recordCollection: DefaultRecordCollection,
		rateCollection:   DefaultRateCollection,
		permitCollection: DefaultPermitCollection,
		maxAttempts:      DefaultMaxAttempts,
		now:              time.Now,
		callTimeout:      DefaultCallTimeout,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	names := []string{o.collection, o.fenceCollection, o.recordCollection, o.rateCollection, o.permitCollection}
	seen := map[string]bool{}
	for _, n := range names {
		if err := validateCollection(n); err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, driver.NewError(driver.InvalidArgument, "firestore: collections must differ: "+n+" is used twice")
		}
		seen[n] = true
	}
	if o.maxAttempts < 1 {
		return nil, driver.NewError(driver.InvalidArgument, "firestore: max attempts must be at least 1")
	}
	if o.callTimeout <= 0 {
		return nil, driver.NewError(driver.InvalidArgument, "firestore: call timeout must be positive")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Driver{
		client:      client,
		locks:       client.Collection(o.collection),
		fences:      client.Collection(o.fenceCollection),
		records:     client.Collection(o.recordCollection),
		rates:       client.Collection(o.rateCollection),
		permits:     client.Collection(o.permitCollection),
		lockName:    o.collection,
		fenceName:   o.fenceCollection,
		cleanup:     o.cleanupInIsLocked,
		maxAttempts: o.maxAttempts,
		logger:      o.logger,
		now:         o.now,
		bgCtx:       ctx,
		bgCancel:    cancel,
		stripes:     newStripes(),
		callTimeout: o.callTimeout,
	}, nil
}

// validateCollection checks a top-level collection ID: non-empty, no '/',
// not "." or "..", not of the reserved form __x__, at most 1500 bytes.
func validateCollection(n string) error {
	switch {
	case n == "":
		return driver.NewError(driver.InvalidArgument, "firestore: collection name must not be empty")
	case strings.Contains(n, "/"):
		return driver.NewError(driver.InvalidArgument, "firestore: collection name must not contain '/': "+n)
	case n == "." || n == "..", reservedID(n):
		return driver.NewError(driver.InvalidArgument, "firestore: reserved collection name: "+n)
	case len(n) > 1500:
		return driver.NewError(driver.InvalidArgument, "firestore: collection name too long")
	}
	return nil
}

// Capabilities returns the driver's capability type.
func (d *Driver) Capabilities() Capabilities { return Capabilities{} }

// Client returns the Firestore client the driver uses.
func (d *Driver) Client() *firestore.Client { return d.client }

// Close stops the driver's background work (release watchers, cleanup
// transactions) and waits for it. It does not close the client.
func (d *Driver) Close() {
	d.bgCancel()
	d.bg.Wait()
}

func (d *Driver) log() *slog.Logger {
	if d.logger != nil {
		return d.logger
	}
	return slog.Default()
}

// bound returns ctx bounded by the call timeout (WithCallTimeout).
// A nil ctx is passed through, for the operation's own check to reject.
func (d *Driver) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		return nil, func() {}
	}
	return context.WithTimeout(ctx, d.callTimeout)
}

// runTx runs f in a transaction (see firestore.Client.RunTransaction) and
// returns when ctx ends, even if the SDK does not: after a failed attempt
// the SDK rolls the transaction back on a context of its own (the caller's
// without its cancellation, bounded by 5 s), so a transaction cut by the
// call timeout against a slow server took up to 3.9 s to return in the
// fault matrix. The transaction then finishes on its goroutine (Close waits
// for it); f is not called again once runTx returned, and a call of f in
// progress (its calls use ctx, which has ended) is waited for, so the
// caller may read what f wrote.
//
// The driver validates every input before it calls Firestore, so an
// InvalidArgument reply inside a transaction means that the server no
// longer knows the transaction ("Transaction is invalid or closed": the
// server restarted, or lost it, while the transaction ran): a valid call
// whose transaction died with the server gets ServiceUnavailable, a
// retryable code, not InvalidArgument (issue 16).
func (d *Driver) runTx(ctx context.Context, f func(context.Context, *firestore.Transaction) error) error {
	var (
		mu        sync.Mutex
		abandoned bool
	)
	guarded := func(ctx context.Context, tx *firestore.Transaction) error {
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			return ctx.Err()
		}
		return f(ctx, tx)
	}
	done := make(chan error, 1)
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		done <- d.client.RunTransaction(ctx, guarded, d.txOpts())
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		mu.Unlock()
		return ctx.Err()
	}
	if err != nil && status.Code(err) == codes.InvalidArgument {
		return &driver.LockError{Code: driver.ServiceUnavailable,
			Message: "firestore: the transaction died with the server: " + err.Error(), Cause: err}
	}
	return err
}
