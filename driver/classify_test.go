package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMapError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	rest := func(err error) *LockError {
		return &LockError{Code: ServiceUnavailable, Message: "x: " + err.Error(), Cause: err}
	}
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	inner := &LockError{Code: RateLimited, Message: "slow down", Key: "other"}
	wrappedInner := fmt.Errorf("call: %w", inner)
	wrappedDeadline := fmt.Errorf("read: %w", context.DeadlineExceeded)
	type got struct {
		Code            Code
		Message         string
		Key, LockID     string
		CauseIsOriginal bool
	}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want *got
	}{
		{"nil", live, nil, nil},
		{"lock error kept", live, wrappedInner, &got{RateLimited, "slow down", "k", "id", true}},
		{"lock error before ended ctx", ended, wrappedInner, &got{RateLimited, "slow down", "k", "id", true}},
		{"context error in chain", live, wrappedDeadline, &got{NetworkTimeout, "operation timed out: context deadline exceeded", "k", "id", true}},
		{"ended ctx", ended, boom, &got{Aborted, "operation aborted: context canceled", "k", "id", false}},
		{"nil ctx", nil, boom, &got{ServiceUnavailable, "x: boom", "k", "id", true}},
		{"driver's own", live, boom, &got{ServiceUnavailable, "x: boom", "k", "id", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := MapError(tt.ctx, tt.err, "k", "id", rest)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("MapError = %v; want nil", err)
				}
				return
			}
			var le *LockError
			if !errors.As(err, &le) {
				t.Fatalf("MapError = %T %v; want *LockError", err, err)
			}
			g := &got{le.Code, le.Message, le.Key, le.LockID, le.Cause == tt.err}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("MapError (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateArgs(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", MaxKeyBytes+1)
	lim := RateLimit{Limit: 1, Period: time.Second, Burst: 1}
	tests := []struct {
		name string
		call func() (string, error)
		want string // "" for success, else a part of the message
	}{
		{"record", func() (string, error) { return ValidateRecord("cafe\u0301", 1) }, ""},
		{"record empty name first", func() (string, error) { return ValidateRecord("", 0) }, "key must not be empty"},
		{"record zero fence", func() (string, error) { return ValidateRecord("n", 0) }, "record fence must be positive"},
		{"put", func() (string, error) { n, _, err := ValidatePutRecord("n", 1, time.Second); return n, err }, ""},
		{"put long name first", func() (string, error) { n, _, err := ValidatePutRecord(long, 0, -1); return n, err }, "exceeds maximum length"},
		{"put fence range", func() (string, error) { n, _, err := ValidatePutRecord("n", 1e15, time.Second); return n, err }, "15-digit"},
		{"put bad ttl", func() (string, error) { n, _, err := ValidatePutRecord("n", 1, time.Microsecond); return n, err }, "ttl"},
		{"key ttl", func() (string, error) { k, _, err := ValidateKeyTTL("k", time.Second); return k, err }, ""},
		{"key ttl key first", func() (string, error) { k, _, err := ValidateKeyTTL("", 0); return k, err }, "key must not be empty"},
		{"key ttl bad ttl", func() (string, error) { k, _, err := ValidateKeyTTL("k", time.Microsecond); return k, err }, "ttl"},
		{"rate", func() (string, error) { return ValidateRate("k", lim, 1) }, ""},
		{"rate key first", func() (string, error) { return ValidateRate("", RateLimit{}, -1) }, "key must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := tt.call()
			switch {
			case tt.want == "":
				if err != nil || n == "" {
					t.Fatalf("= %q, %v; want a name", n, err)
				}
			default:
				if CodeOf(err) != InvalidArgument || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
					t.Fatalf("err = %v; want InvalidArgument %q", err, tt.want)
				}
			}
		})
	}
	if n, _ := ValidateRecord("cafe\u0301", 1); n != "caf\u00e9" {
		t.Errorf("ValidateRecord did not normalise: %q", n)
	}
	if _, ms, _ := ValidatePutRecord("n", 1, 2*time.Second); ms != 2000 {
		t.Errorf("ValidatePutRecord ttl = %d ms; want 2000", ms)
	}
}

func TestCheckKeyAs(t *testing.T) {
	t.Parallel()
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tooLong := errors.New("too long for the backend")
	derive := func(k string) (int, error) {
		if k == "long" {
			return 0, &LockError{Code: InvalidArgument, Message: tooLong.Error()}
		}
		return len(k), nil
	}
	tests := []struct {
		name     string
		ctx      context.Context
		key      string
		wantKey  string
		wantV    int
		wantCode Code
	}{
		{"ok, normalised", live, "cafe\u0301", "caf\u00e9", len("caf\u00e9"), 0},
		{"bad key before ended ctx", ended, "", "", 0, InvalidArgument},
		{"derive error before ended ctx", ended, "long", "", 0, InvalidArgument},
		{"ended ctx", ended, "k", "", 0, Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, v, err := CheckKeyAs(tt.ctx, tt.key, derive)
			if diff := cmp.Diff([]any{tt.wantKey, tt.wantV, tt.wantCode}, []any{k, v, CodeOf(err)}); diff != "" {
				t.Errorf("CheckKeyAs (-want +got):\n%s", diff)
			}
		})
	}
}
