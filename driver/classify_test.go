package driver

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
