package syncguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// ErrInProgress reports that another caller is running the function of the
// key: [OncePerKey.Do] returns it with [WithNonBlocking]. Retry later to get
// the stored result.
var ErrInProgress = errors.New("syncguard: operation in progress elsewhere")

// RecordedError is what [OncePerKey.Do] returns for a key whose function
// failed while [WithRecordErrors] was on. It carries the original error's
// message only.
type RecordedError struct {
	// Message is the original error's Error().
	Message string
}

// Error returns the original error's message.
func (e *RecordedError) Error() string { return e.Message }

// Codec encodes the results [OncePerKey] stores.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// jsonCodec is the default [Codec]: encoding/json.
type jsonCodec struct{}

// Marshal returns json.Marshal(v).
func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal calls json.Unmarshal(data, v).
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// OncePerKey runs a function at most once per key across every process sharing
// the backend, and returns its stored result to every later caller until the
// retention ends ([WithRetention]). Writes are fenced, so a runner that
// stalled past its lease cannot overwrite a newer runner's record: its Do
// fails with [ErrStaleFence] and callers see one result (fn itself may then
// have run twice). A failed fn records nothing unless [WithRecordErrors]. An
// OncePerKey is safe for concurrent use and keeps its state in the backend, so
// instances with the same prefix, codec and T cooperate. docs/primitives.md
// describes the protocol.
type OncePerKey[T any, C Fenced] struct {
	g   *Guard[C]
	cfg onceConfig
}

type onceConfig struct {
	retention    time.Duration
	nonBlocking  bool
	codec        Codec
	recordErrors bool
	prefix       string
	opts         []AcquireOption
	roundPause   time.Duration // between waiting rounds
}

// WithNonBlocking makes [OncePerKey.Do] return [ErrInProgress] at once while
// another caller runs the key's function, instead of waiting for its result.
func WithNonBlocking() Option {
	return func(c *config) { c.set("WithNonBlocking", ""); c.once.nonBlocking = true }
}

// WithCodec sets how [OncePerKey] encodes results (default encoding/json); all
// instances of one prefix must use the same codec.
func WithCodec(codec Codec) Option {
	return func(c *config) {
		problem := ""
		if codec == nil {
			problem = "codec must not be nil"
		}
		c.set("WithCodec", problem)
		c.once.codec = codec
	}
}

// WithRecordErrors stores a failed function's error message (default off):
// until the retention ends, later [OncePerKey.Do] callers get a
// [RecordedError] instead of running the function again.
func WithRecordErrors(on bool) Option {
	return func(c *config) { c.set("WithRecordErrors", ""); c.once.recordErrors = on }
}

// NewOncePerKey returns an OncePerKey for results of type T, without I/O; T
// comes first so that C is inferred: NewOncePerKey[Receipt](g). It takes
// [WithAcquireOptions], [WithPrefix], [WithRetention], [WithNonBlocking],
// [WithCodec] and [WithRecordErrors], and fails with InvalidArgument for a nil
// g or invalid options.
func NewOncePerKey[T any, C Fenced](g *Guard[C], opts ...Option) (*OncePerKey[T, C], error) {
	if g == nil {
		return nil, invalidArg("NewOncePerKey: guard must not be nil")
	}
	c := config{once: onceConfig{codec: jsonCodec{}}}
	if err := applyOptions(&c, "NewOncePerKey", []string{"WithAcquireOptions", "WithPrefix", "WithRetention", "WithNonBlocking", "WithCodec", "WithRecordErrors"}, opts); err != nil {
		return nil, err
	}
	cfg := c.once
	cfg.opts, cfg.retention, cfg.prefix = c.acquire, 24*time.Hour, "once:"
	if c.ret != nil {
		if *c.ret <= 0 {
			return nil, invalidArg(fmt.Sprintf("syncguard.WithRetention: the retention of NewOncePerKey must be positive, got %v", *c.ret))
		}
		cfg.retention = *c.ret
	}
	if c.prefix != nil {
		cfg.prefix = *c.prefix
	}
	if g.records == nil {
		return nil, invalidArg("NewOncePerKey: the driver has no record store")
	}
	acfg, _, err := g.prepare(context.Background(), "k", true, cfg.opts)
	if err != nil {
		return nil, err
	}
	cfg.roundPause = max(acfg.retryDelay, time.Millisecond)
	if cfg.nonBlocking {
		cfg.opts = append(cfg.opts, MaxRetries(0))
	}
	return &OncePerKey[T, C]{g: g, cfg: cfg}, nil
}

// record states (first byte of the stored value after the version).
const (
	onceVersion = 1
	stateRun    = 'R'
	stateDone   = 'D'
	stateFailed = 'E'
)

// Do returns key's stored outcome if there is one; otherwise it runs fn, at
// most once at a time across all processes, with a context cancelled when ctx
// ends or the lock is lost, and stores and returns its result. In blocking
// mode it waits for a running caller as long as ctx allows. Do returns:
//
//   - fn's result, or the stored result of an earlier run;
//   - fn's error unchanged, or a [RecordedError] for a recorded failure;
//   - [ErrInProgress] (wrapped) in non-blocking mode while fn runs elsewhere;
//   - an error matching [ErrStaleFence] if a newer runner took over while fn
//     ran (nothing stored);
//   - InvalidArgument for a nil ctx or fn or an invalid key, Aborted or
//     NetworkTimeout when ctx ends, or the backend's error.
func (o *OncePerKey[T, C]) Do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if ctx == nil {
		return zero, invalidArg("nil context")
	}
	if fn == nil {
		return zero, invalidArg("OncePerKey.Do: fn must not be nil")
	}
	name, err := prefixedName(o.cfg.prefix, key)
	if err != nil {
		return zero, err
	}
	if !o.g.opObserving() {
		return o.do(ctx, name, fn, new(bool))
	}
	octx, start, replayed := o.g.startOp(ctx, EventOnce), time.Now(), false
	v, err := o.do(octx, name, fn, &replayed)
	o.g.emitOnce(octx, name, start, replayed, err)
	return v, err
}

// do is Do after validation; it sets *replayed when it returns a stored
// outcome.
func (o *OncePerKey[T, C]) do(ctx context.Context, name string, fn func(ctx context.Context) (T, error), replayed *bool) (T, error) {
	var zero T
	for {
		if v, ok, err := o.lookup(ctx, name); ok {
			*replayed = err == nil || !isLockError(err)
			return v, err
		}
		var (
			res    T
			resErr error
			final  bool
		)
		err := o.g.Do(ctx, name, func(lctx context.Context, l *Lease[C]) error {
			// Look again under the lock: the previous holder may have
			// finished between our first look and our acquisition.
			if v, ok, err := o.lookup(lctx, name); ok {
				res, resErr, final = v, err, true
				*replayed = err == nil || !isLockError(err)
				return nil
			}
			res, resErr = o.run(lctx, name, FenceOf(l), fn)
			final = true
			return nil
		}, o.cfg.opts...)
		if final {
			// The outcome is settled; a lease lost after the final write
			// does not change it.
			return res, resErr
		}
		switch {
		case err == nil:
			return zero, &LockError{Code: driver.Internal, Message: "OncePerKey: no outcome", Key: name}
		case errors.Is(err, ErrLocked) && o.cfg.nonBlocking:
			return zero, fmt.Errorf("%w (key %s)", ErrInProgress, driver.HashKey(name))
		case errors.Is(err, ErrLocked):
			// A waiting round ended without the result: wait again.
			if err := sleepCtx(ctx, o.cfg.roundPause); err != nil {
				return zero, err
			}
			continue
		default:
			return zero, err
		}
	}
}

// run marks name running under fence, executes fn and records its outcome.
// A panic in fn propagates; the running marker it leaves is overwritten by
// the next runner, whose fence is newer.
func (o *OncePerKey[T, C]) run(ctx context.Context, name string, fence Fence, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	ttl := o.cfg.retention
	put, err := o.g.records.PutRecord(ctx, name, fence, envelope(stateRun, nil), ttl)
	if err != nil {
		return zero, err
	}
	if !put.Stored {
		return zero, staleFence(name, fence, put.Fence)
	}
	v, fnErr := fn(ctx)
	// Write the outcome even if ctx was cancelled meanwhile (the fence
	// keeps a stale write out), but bounded.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.g.cfg.releaseTimeout)
	defer cancel()
	if fnErr != nil {
		if o.cfg.recordErrors {
			if _, err := o.g.records.PutRecord(wctx, name, fence, envelope(stateFailed, []byte(fnErr.Error())), ttl); err != nil {
				return zero, errors.Join(fnErr, err)
			}
		} else if _, err := o.g.records.DeleteRecord(wctx, name, fence); err != nil {
			// The running marker stays; the next caller overwrites it.
			return zero, errors.Join(fnErr, err)
		}
		return zero, fnErr
	}
	data, err := o.cfg.codec.Marshal(v)
	if err != nil {
		_, _ = o.g.records.DeleteRecord(wctx, name, fence)
		return zero, &LockError{Code: driver.InvalidArgument, Message: "OncePerKey: encoding the result: " + err.Error(), Key: name, Cause: err}
	}
	put, err = o.g.records.PutRecord(wctx, name, fence, envelope(stateDone, data), ttl)
	if err != nil {
		return zero, fmt.Errorf("syncguard: OncePerKey: storing the result: %w", err)
	}
	if !put.Stored {
		return zero, staleFence(name, fence, put.Fence)
	}
	return v, nil
}

// lookup returns the settled outcome stored under name, if any.
func (o *OncePerKey[T, C]) lookup(ctx context.Context, name string) (v T, ok bool, err error) {
	rec, err := o.g.records.GetRecord(ctx, name)
	if err != nil {
		return v, true, err
	}
	if rec == nil {
		return v, false, nil
	}
	state, payload, perr := parseEnvelope(rec.Value)
	switch {
	case perr != nil:
		return v, true, &LockError{Code: driver.Internal, Message: "OncePerKey: " + perr.Error(), Key: name}
	case state == stateRun:
		return v, false, nil
	case state == stateFailed:
		return v, true, &RecordedError{Message: string(payload)}
	}
	if err := o.cfg.codec.Unmarshal(payload, &v); err != nil {
		return v, true, &LockError{Code: driver.Internal, Message: "OncePerKey: decoding the stored result: " + err.Error(), Key: name, Cause: err}
	}
	return v, true, nil
}

func envelope(state byte, payload []byte) []byte {
	b := make([]byte, 2+len(payload))
	b[0], b[1] = onceVersion, state
	copy(b[2:], payload)
	return b
}

func parseEnvelope(b []byte) (state byte, payload []byte, err error) {
	if len(b) < 2 || b[0] != onceVersion {
		return 0, nil, errors.New("unknown record format")
	}
	switch b[1] {
	case stateRun, stateDone, stateFailed:
		return b[1], b[2:], nil
	}
	return 0, nil, errors.New("unknown record state")
}

// isLockError reports whether err is a *LockError (a backend or decoding
// failure of lookup, not a stored outcome).
func isLockError(err error) bool {
	var le *LockError
	return errors.As(err, &le)
}
