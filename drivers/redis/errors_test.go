package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// TestRedisErrorReplies maps real error replies: the server produces each
// prefix through redis.error_reply, so the test exercises the same
// *rueidis.RedisError values a failing server sends.
func TestRedisErrorReplies(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	ctx := context.Background()
	tests := []struct {
		reply string
		code  driver.Code
	}{
		{"LOADING Redis is loading the dataset in memory", driver.ServiceUnavailable},
		{"BUSY Redis is busy running a script", driver.ServiceUnavailable},
		{"MASTERDOWN Link with MASTER is down", driver.ServiceUnavailable},
		{"TRYAGAIN Multiple keys request during rehashing of slot", driver.ServiceUnavailable},
		{"CLUSTERDOWN The cluster is down", driver.ServiceUnavailable},
		{"READONLY You can't write against a read only replica.", driver.ServiceUnavailable},
		{"OOM command not allowed when used memory > 'maxmemory'.", driver.ServiceUnavailable},
		{"NOREPLICAS Not enough good replicas to write.", driver.ServiceUnavailable},
		{"NOAUTH Authentication required.", driver.AuthFailed},
		{"WRONGPASS invalid username-password pair", driver.AuthFailed},
		{"NOPERM this user has no permissions", driver.AuthFailed},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", driver.InvalidArgument},
		{"ERR something else", driver.Internal},
		{"CROSSSLOT Keys in request don't hash to the same slot", driver.Internal},
	}
	for _, tt := range tests {
		err := c.Do(ctx, c.B().Eval().Script("return redis.error_reply(ARGV[1])").Numkeys(0).Arg(tt.reply).Build()).Error()
		if _, ok := rueidis.IsRedisErr(err); !ok {
			t.Fatalf("%q: not a RedisError: %T %v", tt.reply, err, err)
		}
		got := mapError(ctx, err, "k", "")
		if driver.CodeOf(got) != tt.code {
			t.Errorf("%q → %v; want %v", tt.reply, driver.CodeOf(got), tt.code)
		}
		if !errors.Is(got, err) {
			t.Errorf("%q: mapped error does not wrap the reply", tt.reply)
		}
	}
}

// TestTransportErrors maps client-side errors by type.
func TestTransportErrors(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		code driver.Code
		is   error
	}{
		{"canceled", context.Background(), context.Canceled, driver.Aborted, context.Canceled},
		{"deadline", context.Background(), context.DeadlineExceeded, driver.NetworkTimeout, context.DeadlineExceeded},
		{"ctx ended, client error", canceled, io.EOF, driver.Aborted, context.Canceled},
		{"net timeout", context.Background(), timeoutErr, driver.NetworkTimeout, os.ErrDeadlineExceeded},
		{"refused", context.Background(), &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, driver.ServiceUnavailable, syscall.ECONNREFUSED},
		{"reset", context.Background(), fmt.Errorf("read: %w", syscall.ECONNRESET), driver.ServiceUnavailable, syscall.ECONNRESET},
		{"eof", context.Background(), io.EOF, driver.ServiceUnavailable, io.EOF},
		{"closing", context.Background(), rueidis.ErrClosing, driver.ServiceUnavailable, rueidis.ErrClosing},
		{"no slot", context.Background(), rueidis.ErrNoSlot, driver.ServiceUnavailable, rueidis.ErrNoSlot},
		{"dns", context.Background(), &net.DNSError{Err: "no such host", Name: "redis"}, driver.ServiceUnavailable, nil},
		{"unknown", context.Background(), errors.New("boom"), driver.Internal, nil},
		{"lock error passes", context.Background(), driver.NewError(driver.InvalidArgument, "x"), driver.InvalidArgument, nil},
	}
	for _, tt := range tests {
		got := mapError(tt.ctx, tt.err, "", "id")
		var le *driver.LockError
		if !errors.As(got, &le) {
			t.Fatalf("%s: %T is not a LockError", tt.name, got)
		}
		if le.Code != tt.code {
			t.Errorf("%s: code %v; want %v", tt.name, le.Code, tt.code)
		}
		if tt.is != nil && !errors.Is(got, tt.is) {
			t.Errorf("%s: %v does not wrap %v", tt.name, got, tt.is)
		}
	}
	if mapError(context.Background(), nil, "", "") != nil {
		t.Error("mapError(nil) != nil")
	}
}

// TestWrongTypeAtDriverKey: a foreign value at a driver key is reported as
// InvalidArgument by the script, not a panic or a silent success.
func TestWrongTypeAtDriverKey(t *testing.T) {
	t.Parallel()
	c := singleClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	kn, _ := d.names("typed")
	if err := c.Do(ctx, c.B().Set().Key(kn.lock()).Value("a string").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err := d.Acquire(ctx, "typed", driver.DefaultTTL)
	if driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("Acquire over a string: %v; want InvalidArgument", err)
	}
}
