package syncguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// TestOptionErrorsNameTheOption: an invalid option value is reported with
// the name of the Go option the caller wrote and the value it got, never
// with a field name of the driver contract ("ttlMs").
func TestOptionErrorsNameTheOption(t *testing.T) {
	t.Parallel()
	g := syncguard.New(memory.New())
	ctx := context.Background()
	acquire := func(opts ...syncguard.AcquireOption) func() error {
		return func() error {
			l, err := g.TryAcquire(ctx, "opt:errors", opts...)
			l.Close()
			return err
		}
	}
	tests := []struct {
		name string
		call func() error
		want string // the whole message
	}{
		{"TTL negative", acquire(syncguard.TTL(-time.Second)),
			"syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got -1s"},
		{"TTL fractional", acquire(syncguard.TTL(1500 * time.Microsecond)),
			"syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got 1.5ms"},
		{"TTL through WithAcquireDefaults", func() error {
			l, err := syncguard.New(memory.New(), syncguard.WithAcquireDefaults(syncguard.TTL(0))).TryAcquire(ctx, "k")
			l.Close()
			return err
		}, "syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got 0s"},
		{"MaxRetries", acquire(syncguard.MaxRetries(-2)),
			"syncguard.MaxRetries: the number of retries must not be negative, got -2"},
		{"RetryDelay", acquire(syncguard.RetryDelay(-time.Millisecond)),
			"syncguard.RetryDelay: the retry delay must not be negative, got -1ms"},
		{"Timeout", acquire(syncguard.Timeout(0)),
			"syncguard.Timeout: the acquisition timeout must be positive, got 0s"},
		{"Backoff", acquire(syncguard.Backoff(9)),
			"syncguard.Backoff: unknown backoff strategy 9 (want BackoffExponential or BackoffFixed)"},
		{"Jitter", acquire(syncguard.Jitter(9)),
			"syncguard.Jitter: unknown jitter strategy 9 (want JitterEqual, JitterFull or JitterNone)"},
		{"BackOffPolicy", acquire(syncguard.BackOffPolicy(nil)),
			"syncguard.BackOffPolicy: newPolicy must not be nil"},
		{"MutexRetryDelay", func() error {
			_, err := syncguard.NewMutex(g, "k", syncguard.MutexRetryDelay(-time.Second))
			return err
		}, "syncguard.MutexRetryDelay: the retry delay must be positive, got -1s"},
		{"TTL through MutexAcquireOptions", func() error {
			_, err := syncguard.NewMutex(g, "k", syncguard.MutexAcquireOptions(syncguard.TTL(-time.Second)))
			return err
		}, "syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got -1s"},
		{"Retention", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.Retention(time.Microsecond))
			return err
		}, "syncguard.Retention: the retention must be a positive whole number of milliseconds, at most 100 years, got 1µs"},
		{"WithCodec", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithCodec(nil))
			return err
		}, "syncguard.WithCodec: codec must not be nil"},
		{"FencedTTL", func() error {
			_, err := syncguard.NewFencedWriter(g, syncguard.FencedTTL(-time.Minute))
			return err
		}, "syncguard.FencedTTL: the record TTL must be 0 (no expiry) or a positive whole number of milliseconds, got -1m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var le *syncguard.LockError
			if !errors.As(err, &le) || le.Code != syncguard.InvalidArgument {
				t.Fatalf("error = %v; want an InvalidArgument *LockError", err)
			}
			if le.Message != tc.want {
				t.Errorf("message = %q\nwant      %q", le.Message, tc.want)
			}
			if strings.Contains(le.Message, "ttlMs") {
				t.Errorf("message %q names the contract field ttlMs", le.Message)
			}
		})
	}
}
