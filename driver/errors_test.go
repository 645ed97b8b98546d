package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// coreRequireCode fails t unless err is (or wraps) a *LockError with code whose
// message contains msg.
func coreRequireCode(t *testing.T, err error, code Code, msg string) *LockError {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v error containing %q", code, msg)
	}
	var le *LockError
	if !errors.As(err, &le) {
		t.Fatalf("err = %T %v, want *LockError", err, err)
	}
	if le.Code != code {
		t.Fatalf("Code = %v (%q), want %v", le.Code, le.Error(), code)
	}
	if !strings.Contains(le.Error(), msg) {
		t.Fatalf("Error() = %q, want it to contain %q", le.Error(), msg)
	}
	return le
}

// coreAllCodes lists every code with its name and sentinel.
var coreAllCodes = []struct {
	code     Code
	name     string
	sentinel *LockError
}{
	{ServiceUnavailable, "ServiceUnavailable", ErrServiceUnavailable},
	{AuthFailed, "AuthFailed", ErrAuthFailed},
	{InvalidArgument, "InvalidArgument", ErrInvalidArgument},
	{RateLimited, "RateLimited", ErrRateLimited},
	{NetworkTimeout, "NetworkTimeout", ErrNetworkTimeout},
	{AcquisitionTimeout, "AcquisitionTimeout", ErrAcquisitionTimeout},
	{Aborted, "Aborted", ErrAborted},
	{Internal, "Internal", ErrInternal},
}

func TestLockError(t *testing.T) {
	t.Parallel()

	t.Run("case76/fields", func(t *testing.T) {
		t.Parallel()
		cause := errors.New("connection refused")
		e := &LockError{Code: ServiceUnavailable, Message: "backend down", Key: "resource:1", LockID: "ABCDEFGHIJKLMNOPQRSTUV", Cause: cause}
		want := &LockError{Code: ServiceUnavailable, Message: "backend down", Key: "resource:1", LockID: "ABCDEFGHIJKLMNOPQRSTUV", Cause: cause}
		if diff := cmp.Diff(*want, *e, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
			t.Errorf("LockError (-want +got):\n%s", diff)
		}
		if got := e.Error(); got != "syncguard: backend down" {
			t.Errorf("Error() = %q, want %q", got, "syncguard: backend down")
		}
		if got := e.Unwrap(); got != cause {
			t.Errorf("Unwrap() = %v, want the cause", got)
		}
		if !errors.Is(e, cause) {
			t.Error("errors.Is(e, cause) = false")
		}
		if !errors.Is(e, ErrServiceUnavailable) {
			t.Error("errors.Is(e, ErrServiceUnavailable) = false")
		}
	})

	t.Run("case76/message_defaults_to_code", func(t *testing.T) {
		t.Parallel()
		for _, c := range coreAllCodes {
			if got := (&LockError{Code: c.code}).Error(); got != "syncguard: "+c.name {
				t.Errorf("LockError{Code: %d}.Error() = %q, want %q", c.code, got, c.name)
			}
			if got := NewError(c.code, "").Error(); got != "syncguard: "+c.name {
				t.Errorf("NewError(%d, \"\").Error() = %q, want %q", c.code, got, c.name)
			}
		}
	})

	t.Run("case76/nil_context_allowed", func(t *testing.T) {
		t.Parallel()
		e := NewError(Internal, "boom")
		if diff := cmp.Diff(&LockError{Code: Internal, Message: "boom"}, e); diff != "" {
			t.Errorf("NewError (-want +got):\n%s", diff)
		}
		if e.Unwrap() != nil {
			t.Errorf("Unwrap() = %v, want nil", e.Unwrap())
		}
		if errors.Is(e, io.EOF) {
			t.Error("errors.Is(e, io.EOF) = true without a cause")
		}
	})

	t.Run("case76/all_codes_constructible_and_matchable", func(t *testing.T) {
		t.Parallel()
		for _, c := range coreAllCodes {
			e := NewError(c.code, "msg "+c.name)
			if e.Code != c.code || e.Message != "msg "+c.name {
				t.Errorf("NewError(%v) = %+v", c.code, e)
			}
			wrapped := fmt.Errorf("op: %w", e)
			for _, other := range coreAllCodes {
				if got, want := errors.Is(wrapped, other.sentinel), other.code == c.code; got != want {
					t.Errorf("errors.Is(%v error, Err%s) = %v, want %v", c.code, other.name, got, want)
				}
			}
			var le *LockError
			if !errors.As(wrapped, &le) || le != e {
				t.Errorf("errors.As(%v error) = %v, want the original", c.code, le)
			}
			if got := CodeOf(wrapped); got != c.code {
				t.Errorf("CodeOf = %v, want %v", got, c.code)
			}
			if got := c.sentinel.Code; got != c.code {
				t.Errorf("sentinel Err%s has code %v", c.name, got)
			}
		}
	})

	t.Run("case76/is_ignores_non_lockerror_targets", func(t *testing.T) {
		t.Parallel()
		e := NewError(Aborted, "aborted")
		if e.Is(errors.New("Aborted")) {
			t.Error("Is(plain error with same text) = true")
		}
		if !e.Is(&LockError{Code: Aborted, Message: "other"}) {
			t.Error("Is(LockError of same code, other message) = false")
		}
	})
}

func TestCodeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code Code
		want string
	}{
		{0, "Unknown"},
		{-1, "Unknown"},
		{Internal + 1, "Unknown"},
		{Code(1 << 20), "Unknown"},
	}
	for _, c := range coreAllCodes {
		tests = append(tests, struct {
			code Code
			want string
		}{c.code, c.name})
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("case76/%d", int(tt.code)), func(t *testing.T) {
			if got := tt.code.String(); got != tt.want {
				t.Errorf("Code(%d).String() = %q, want %q", int(tt.code), got, tt.want)
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"case76/nil", nil, 0},
		{"case76/plain", errors.New("x"), 0},
		{"case76/direct", NewError(RateLimited, "x"), RateLimited},
		{"case76/wrapped_twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", NewError(AuthFailed, "x"))), AuthFailed},
		{"case76/joined", errors.Join(errors.New("x"), NewError(NetworkTimeout, "t")), NetworkTimeout},
		{"case76/sentinel", ErrInternal, Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestContextError(t *testing.T) {
	t.Parallel()
	other := errors.New("something else")
	tests := []struct {
		name     string
		in       error
		code     Code
		msg      string
		sentinel *LockError
		is       error
	}{
		{"case76/canceled", context.Canceled, Aborted, "aborted", ErrAborted, context.Canceled},
		{"case96/deadline", context.DeadlineExceeded, NetworkTimeout, "timed out", ErrNetworkTimeout, context.DeadlineExceeded},
		{"case76/wrapped_canceled", fmt.Errorf("redis: %w", context.Canceled), Aborted, "aborted", ErrAborted, context.Canceled},
		{"case96/wrapped_deadline", fmt.Errorf("pg: %w", context.DeadlineExceeded), NetworkTimeout, "timed out", ErrNetworkTimeout, context.DeadlineExceeded},
		{"case76/other", other, Internal, "something else", ErrInternal, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ContextError(tt.in)
			le := coreRequireCode(t, got, tt.code, tt.msg)
			if le.Cause != tt.in {
				t.Errorf("Cause = %v, want %v", le.Cause, tt.in)
			}
			if !errors.Is(got, tt.sentinel) {
				t.Errorf("errors.Is(err, %v sentinel) = false", tt.code)
			}
			if !errors.Is(got, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
		})
	}
	t.Run("case76/nil", func(t *testing.T) {
		t.Parallel()
		if got := ContextError(nil); got != nil {
			t.Errorf("ContextError(nil) = %v, want nil", got)
		}
	})
}

func TestCheckContext(t *testing.T) {
	t.Parallel()

	t.Run("case76/nil_context", func(t *testing.T) {
		t.Parallel()
		var nilCtx context.Context
		coreRequireCode(t, CheckContext(nilCtx), InvalidArgument, "nil context")
	})

	t.Run("case93/live", func(t *testing.T) {
		t.Parallel()
		if err := CheckContext(context.Background()); err != nil {
			t.Errorf("CheckContext(Background) = %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := CheckContext(ctx); err != nil {
			t.Errorf("CheckContext(live deadline) = %v", err)
		}
	})

	t.Run("case92/canceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := CheckContext(ctx)
		coreRequireCode(t, err, Aborted, "aborted")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrAborted) {
			t.Errorf("err = %v does not match context.Canceled and ErrAborted", err)
		}
	})

	t.Run("case96/deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
		defer cancel()
		err := CheckContext(ctx)
		coreRequireCode(t, err, NetworkTimeout, "")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNetworkTimeout) {
			t.Errorf("err = %v does not match context.DeadlineExceeded and ErrNetworkTimeout", err)
		}
	})
}

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("plain"), false},
		{NewError(ServiceUnavailable, "down"), true},
		{fmt.Errorf("wrapped: %w", NewError(NetworkTimeout, "slow")), true},
		{NewError(InvalidArgument, "bad key"), false},
		{NewError(Internal, "bug"), false},
		{NewError(AcquisitionTimeout, "busy"), false},
	} {
		if got := IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
