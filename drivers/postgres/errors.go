package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/syncguard/syncguard/driver"
)

// mapError turns any error of pgx, pgxpool or the network into a
// *driver.LockError (docs/contract.md#errors); the original error is its Cause.
//
//   - ctx ended: Aborted (Canceled) or NetworkTimeout (DeadlineExceeded),
//     wrapping ctx.Err();
//   - *pgconn.PgError by SQLSTATE: see [CodeForSQLState];
//   - pool closed: ServiceUnavailable; pool exhausted: the wait ends with
//     ctx, so NetworkTimeout or Aborted;
//   - connect errors: AuthFailed for class 28, NetworkTimeout for a connect
//     timeout, ServiceUnavailable otherwise;
//   - network errors: NetworkTimeout for timeouts, ServiceUnavailable for
//     refused/reset/closed connections, DNS failures and EOF;
//   - anything else: Internal.
//
// A "conn closed" error keeps its cause behind [maybeSent], so that
// pgconn.SafeToRetry of the result is false (see [safeToRetry]).
func mapError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var le *driver.LockError
	if errors.As(err, &le) {
		return err
	}
	if pgconn.SafeToRetry(err) && !safeToRetry(err) {
		err = &maybeSent{err}
	}
	if ctx != nil && ctx.Err() != nil {
		// The operation was interrupted by its context, whatever pgx
		// reports (a closed connection, a cancelled statement).
		out := driver.ContextError(ctx.Err())
		out.Cause = &wrapped{ctxErr: ctx.Err(), cause: err}
		return out
	}
	return classify(err)
}

// wrapped keeps both the context error and the driver error reachable with
// errors.Is/As.
type wrapped struct {
	ctxErr, cause error
}

func (w *wrapped) Error() string   { return w.ctxErr.Error() + ": " + w.cause.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.ctxErr, w.cause} }

// safeToRetry reports whether err proves that the request was never sent:
// pgconn.SafeToRetry, except for a closed connection
// (pgconn.ErrConnClosed). pgx (v5.12 and v5.13) reports a batch, or a
// simple-protocol query, whose reply could not be read (the connection
// broke after the request was written, so it may have run and committed)
// as "conn closed": MultiResultReader.NextResult drops the read's error,
// and the connection, closed by that error, answers the next read with
// the error that pgx uses for a connection found closed before use, which
// claims SafeToRetry. This is how QueryExecModeExec and
// QueryExecModeSimpleProtocol, the modes for PgBouncer, send Acquire.
func safeToRetry(err error) bool {
	return pgconn.SafeToRetry(err) && !errors.Is(err, pgconn.ErrConnClosed)
}

// maybeSent wraps an error that claims SafeToRetry although the request
// may have been sent (see safeToRetry): pgconn.SafeToRetry of it, and of
// the driver's errors that wrap it, is false. Error and errors.Is/As see
// through it.
type maybeSent struct{ err error }

func (e *maybeSent) Error() string     { return e.err.Error() }
func (e *maybeSent) Unwrap() error     { return e.err }
func (e *maybeSent) SafeToRetry() bool { return false }

func classify(err error) *driver.LockError {
	mk := func(code driver.Code, msg string) *driver.LockError {
		return &driver.LockError{Code: code, Message: msg + ": " + err.Error(), Cause: err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &driver.LockError{Code: driver.Aborted, Message: "operation aborted: " + err.Error(), Cause: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &driver.LockError{Code: driver.NetworkTimeout, Message: "operation timed out: " + err.Error(), Cause: err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := CodeForSQLState(pgErr.Code)
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && code == driver.Internal {
			code = driver.ServiceUnavailable
		}
		return mk(code, "postgres: SQLSTATE "+pgErr.Code)
	}
	if errors.Is(err, puddle.ErrClosedPool) || err.Error() == "closed pool" {
		return mk(driver.ServiceUnavailable, "postgres: pool is closed")
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if pgconn.Timeout(err) || isTimeout(err) {
			return mk(driver.NetworkTimeout, "postgres: connect timeout")
		}
		return mk(driver.ServiceUnavailable, "postgres: cannot connect")
	}
	if pgconn.Timeout(err) || isTimeout(err) {
		return mk(driver.NetworkTimeout, "postgres: network timeout")
	}
	if isNetError(err) {
		return mk(driver.ServiceUnavailable, "postgres: connection failed")
	}
	return mk(driver.Internal, "postgres")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isNetError(err error) bool {
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &ne), errors.As(err, &dnsErr):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.ECONNABORTED):
		return true
	}
	// pgconn reports a connection it closed after an error this way.
	msg := err.Error()
	return strings.Contains(msg, "conn closed")
}

// CodeForSQLState maps a PostgreSQL SQLSTATE to a SyncGuard error code
// (docs/contract.md#errors; the TypeScript SyncGuard's table, extended to whole classes where it
// lists members):
//
//	class 08 (connection exception), 40001, 40P01, 40003,
//	57P01–57P05 (shutdown, cannot connect now)          → ServiceUnavailable
//	class 28 (invalid authorization)                     → AuthFailed
//	class 22 (data exception), class 23 (integrity),
//	42P01, 42703, 42883                                  → InvalidArgument
//	class 53 (insufficient resources)                    → RateLimited
//	57014 (query canceled, statement_timeout)            → NetworkTimeout
//	anything else                                        → Internal
func CodeForSQLState(state string) driver.Code {
	if len(state) != 5 {
		return driver.Internal
	}
	switch state {
	case "40001", "40P01", "40003", "57P01", "57P02", "57P03", "57P04", "57P05":
		return driver.ServiceUnavailable
	case "42P01", "42703", "42883":
		return driver.InvalidArgument
	case "57014":
		return driver.NetworkTimeout
	}
	switch state[:2] {
	case "08":
		return driver.ServiceUnavailable
	case "28":
		return driver.AuthFailed
	case "22", "23":
		return driver.InvalidArgument
	case "53":
		return driver.RateLimited
	}
	return driver.Internal
}
