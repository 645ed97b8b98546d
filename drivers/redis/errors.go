package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// mapError turns an error from rueidis into a *driver.LockError. It
// classifies by type: the context's own error first, then Redis error
// replies by their error-code prefix (the first word Redis sends, a stable
// protocol element), then network errors by type. Nothing is matched by
// free-form message text.
//
//	context.Canceled                          Aborted (wraps ctx error)
//	context.DeadlineExceeded                  NetworkTimeout (wraps ctx error)
//	LOADING BUSY MASTERDOWN TRYAGAIN
//	CLUSTERDOWN READONLY OOM MOVED ASK
//	NOREPLICAS MISCONF                        ServiceUnavailable
//	NOAUTH WRONGPASS NOPERM                   AuthFailed
//	WRONGTYPE                                 InvalidArgument (a foreign value at a driver key)
//	other Redis error replies                 Internal
//	net.Error with Timeout()                  NetworkTimeout
//	refused/reset/EOF/closed/DNS/dial errors,
//	rueidis.ErrClosing, ErrNoSlot, ErrNoAddr  ServiceUnavailable
//	anything else                             Internal
func mapError(ctx context.Context, err error, key, lockID string) error {
	return driver.MapError(ctx, err, key, lockID, classify)
}

// classify maps what [driver.Classify] leaves to the driver: Redis error
// replies, then network errors.
func classify(err error) *driver.LockError {
	if re, ok := rueidis.IsRedisErr(err); ok {
		return &driver.LockError{Code: redisErrorCode(re), Message: "redis: " + re.Error(), Cause: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &driver.LockError{Code: driver.NetworkTimeout, Message: "redis: network timeout", Cause: err}
	}
	if unavailable(err) {
		return &driver.LockError{Code: driver.ServiceUnavailable, Message: "redis: service unavailable: " + err.Error(), Cause: err}
	}
	return &driver.LockError{Code: driver.Internal, Message: "redis: " + err.Error(), Cause: err}
}

// redisErrorCode maps a Redis error reply by its code prefix.
func redisErrorCode(re *rueidis.RedisError) driver.Code {
	msg := re.Error()
	prefix, _, _ := strings.Cut(msg, " ")
	switch prefix {
	case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY",
		"OOM", "MOVED", "ASK", "NOREPLICAS", "MISCONF", "UNBLOCKED":
		return driver.ServiceUnavailable
	case "NOAUTH", "WRONGPASS", "NOPERM":
		return driver.AuthFailed
	case "WRONGTYPE":
		return driver.InvalidArgument
	}
	return driver.Internal
}

// unavailable reports connection-level failures: the server could not be
// reached or the connection broke.
func unavailable(err error) bool {
	switch {
	case errors.Is(err, rueidis.ErrClosing),
		errors.Is(err, rueidis.ErrNoSlot),
		errors.Is(err, rueidis.ErrNoAddr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH):
		return true
	}
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de)
}

// outcomeUnknown reports whether a failed request may still have been
// executed by the server: anything but a Redis error reply.
func outcomeUnknown(err error) bool {
	_, isReply := rueidis.IsRedisErr(err)
	return !isReply
}
