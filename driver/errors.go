package driver

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Code classifies a [LockError]. Every backend failure maps to one of these.
type Code int

// Error codes. The zero value is not a valid code.
const (
	// ServiceUnavailable: the backend cannot be reached or refused the
	// operation transiently (connection refused or reset, failover,
	// serialization failure). Retrying later may succeed.
	ServiceUnavailable Code = iota + 1
	// AuthFailed: the backend rejected the credentials or permissions.
	AuthFailed
	// InvalidArgument: bad input (key, lock ID, TTL, configuration) or a
	// misconfigured backend (missing table or index). Do not retry.
	InvalidArgument
	// RateLimited: the backend is out of capacity (too many connections,
	// quota exhausted). Back off.
	RateLimited
	// NetworkTimeout: the operation did not finish in time, including an
	// expired context deadline. Its outcome is unknown.
	NetworkTimeout
	// AcquisitionTimeout: Guard gave up acquiring a contended lock after its
	// retries or its timeout. Such errors also match ErrLocked.
	AcquisitionTimeout
	// Aborted: the caller's context was cancelled.
	Aborted
	// Internal: anything else, including fence overflow.
	Internal
)

var codeNames = [...]string{
	ServiceUnavailable: "ServiceUnavailable",
	AuthFailed:         "AuthFailed",
	InvalidArgument:    "InvalidArgument",
	RateLimited:        "RateLimited",
	NetworkTimeout:     "NetworkTimeout",
	AcquisitionTimeout: "AcquisitionTimeout",
	Aborted:            "Aborted",
	Internal:           "Internal",
}

// String returns the code's name, such as "InvalidArgument".
func (c Code) String() string {
	if c > 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Unknown"
}

// LockError is the error type of every syncguard operation.
//
// It works with errors.Is (matching the sentinel of the same Code, and the
// Cause chain) and errors.As.
type LockError struct {
	// Code classifies the failure.
	Code Code
	// Message is a human-readable description; Error returns it.
	Message string
	// Key is the normalised key involved, if any. It may be sensitive:
	// loggers in this package never print it.
	Key string
	// LockID is the lock ID involved, if any.
	LockID string
	// Cause is the underlying error, if any.
	Cause error
}

// Error returns "syncguard: " and Message (or the code's name when Message
// is empty); a Message that names a syncguard identifier already starts so.
func (e *LockError) Error() string {
	switch {
	case e.Message == "":
		return "syncguard: " + e.Code.String()
	case strings.HasPrefix(e.Message, "syncguard"): // "syncguard.TTL: …" names the option
		return e.Message
	}
	return "syncguard: " + e.Message
}

// Unwrap returns the cause.
func (e *LockError) Unwrap() error { return e.Cause }

// Is reports whether target is a *LockError with the same Code, so that
// errors.Is(err, ErrAborted) matches any Aborted error.
func (e *LockError) Is(target error) bool {
	t, ok := target.(*LockError)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is, one per Code.
var (
	ErrServiceUnavailable = &LockError{Code: ServiceUnavailable}
	ErrAuthFailed         = &LockError{Code: AuthFailed}
	ErrInvalidArgument    = &LockError{Code: InvalidArgument}
	ErrRateLimited        = &LockError{Code: RateLimited}
	ErrNetworkTimeout     = &LockError{Code: NetworkTimeout}
	ErrAcquisitionTimeout = &LockError{Code: AcquisitionTimeout}
	ErrAborted            = &LockError{Code: Aborted}
	ErrInternal           = &LockError{Code: Internal}
)

// NewError returns a *LockError with the given code and message.
func NewError(code Code, message string) *LockError {
	return &LockError{Code: code, Message: message}
}

// CodeOf returns the Code of the first *LockError in err's chain, or 0 if
// there is none.
func CodeOf(err error) Code {
	var le *LockError
	if errors.As(err, &le) {
		return le.Code
	}
	return 0
}

// IsUnavailable reports whether err says the backend could not be reached
// or did not answer in time: its code is ServiceUnavailable or
// NetworkTimeout. Guard retries such acquisitions within their Timeout,
// leases retry such releases in the background, and the rate-limit
// middleware fails open only on them.
func IsUnavailable(err error) bool {
	switch CodeOf(err) {
	case ServiceUnavailable, NetworkTimeout:
		return true
	}
	return false
}

// ContextError maps a context error to a *LockError: context.Canceled to
// Aborted and context.DeadlineExceeded to NetworkTimeout, both wrapping the
// context error. It returns nil for nil and wraps anything else as Internal.
// Drivers use it for ctx.Err() and for errors their clients return after a
// context ended.
func ContextError(err error) *LockError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return &LockError{Code: Aborted, Message: "operation aborted: context canceled", Cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &LockError{Code: NetworkTimeout, Message: "operation timed out: context deadline exceeded", Cause: err}
	default:
		return &LockError{Code: Internal, Message: err.Error(), Cause: err}
	}
}

// CheckContext returns ContextError(ctx.Err()) as an error, or nil when ctx
// is still live. Drivers call it after validation and before I/O.
func CheckContext(ctx context.Context) error {
	if ctx == nil {
		return invalidArg("nil context")
	}
	if err := ctx.Err(); err != nil {
		return ContextError(err)
	}
	return nil
}

func invalidArg(msg string) *LockError {
	return &LockError{Code: InvalidArgument, Message: msg}
}

// CheckKey is a driver's check of a key-addressed call: the key
// normalised ([NormalizeKey]) and the context still live ([CheckContext]).
// syncguard.Guard has checked both already; drivers check again, cheaply,
// so that a direct caller gets the same errors.
func CheckKey(ctx context.Context, key string) (string, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return "", err
	}
	return k, CheckContext(ctx)
}

// CheckKeyAs is CheckKey for drivers that derive a storage name from the
// key: derive runs on the normalised key, and its error (a key the backend
// cannot store, say) is returned, before the context is checked. It returns
// the normalised key and what derive returned.
func CheckKeyAs[T any](ctx context.Context, key string, derive func(string) (T, error)) (string, T, error) {
	var zero T
	k, err := NormalizeKey(key)
	if err != nil {
		return "", zero, err
	}
	v, err := derive(k)
	if err != nil {
		return "", zero, err
	}
	if err := CheckContext(ctx); err != nil {
		return "", zero, err
	}
	return k, v, nil
}

// CheckKeyTTL is [CheckKey] plus the TTL in milliseconds ([TTLMillis]).
func CheckKeyTTL(ctx context.Context, key string, ttl time.Duration) (string, int64, error) {
	k, ms, err := ValidateKeyTTL(key, ttl)
	if err != nil {
		return "", 0, err
	}
	return k, ms, CheckContext(ctx)
}

// ValidateKeyTTL is CheckKeyTTL without the context check, for drivers
// that derive storage names from the normalised key (and check those)
// before they check the context.
func ValidateKeyTTL(key string, ttl time.Duration) (string, int64, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return "", 0, err
	}
	ms, err := TTLMillis(ttl)
	if err != nil {
		return "", 0, err
	}
	return k, ms, nil
}

// CheckID is a driver's check of a lock-ID-addressed call: the ID well
// formed ([ValidateLockID]) and the context still live.
func CheckID(ctx context.Context, lockID string) error {
	if err := ValidateLockID(lockID); err != nil {
		return err
	}
	return CheckContext(ctx)
}

// CheckIDTTL is [CheckID] plus the TTL in milliseconds.
func CheckIDTTL(ctx context.Context, lockID string, ttl time.Duration) (int64, error) {
	if err := ValidateLockID(lockID); err != nil {
		return 0, err
	}
	ms, err := TTLMillis(ttl)
	if err != nil {
		return 0, err
	}
	return ms, CheckContext(ctx)
}

// CheckRate is a driver's check of AllowN: the key normalised, the limit
// and n valid ([ValidateRateLimit]) and the context live.
func CheckRate(ctx context.Context, key string, lim RateLimit, n int) (string, error) {
	k, err := ValidateRate(key, lim, n)
	if err != nil {
		return "", err
	}
	return k, CheckContext(ctx)
}

// ValidateRate is CheckRate without the context check, for drivers that
// derive a storage name from the normalised key (and check that) before
// they check the context.
func ValidateRate(key string, lim RateLimit, n int) (string, error) {
	k, err := NormalizeKey(key)
	if err != nil {
		return "", err
	}
	if err := ValidateRateLimit(lim, n); err != nil {
		return "", err
	}
	return k, nil
}

// ValidatePutRecord checks the arguments of PutRecord, in this order,
// without the context: the name normalised, the fence positive and within
// [FormatFence]'s range, the TTL valid ([RecordTTLMillis]). It returns the
// normalised name and the TTL in milliseconds.
func ValidatePutRecord(name string, fence Fence, ttl time.Duration) (string, int64, error) {
	n, err := ValidateRecord(name, fence)
	if err != nil {
		return "", 0, err
	}
	if _, err := FormatFence(int64(fence)); err != nil {
		return "", 0, err
	}
	ttlMs, err := RecordTTLMillis(ttl)
	if err != nil {
		return "", 0, err
	}
	return n, ttlMs, nil
}

func errZeroFence() *LockError { return NewError(InvalidArgument, "record fence must be positive") }

// CheckRecord is a driver's check of PutRecord and DeleteRecord: the name
// normalised, the fence positive and the context live.
func CheckRecord(ctx context.Context, name string, fence Fence) (string, error) {
	n, err := ValidateRecord(name, fence)
	if err != nil {
		return "", err
	}
	return n, CheckContext(ctx)
}

// ValidateRecord is CheckRecord without the context check, for drivers
// that check more (a backend's fence range, a storage name derived from
// the name) before they check the context.
func ValidateRecord(name string, fence Fence) (string, error) {
	n, err := NormalizeKey(name)
	if err != nil {
		return "", err
	}
	if fence == 0 {
		return "", errZeroFence()
	}
	return n, nil
}
