package syncguard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
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
		{"TTL through New's WithAcquireOptions", func() error {
			l, err := syncguard.New(memory.New(), syncguard.WithAcquireOptions(syncguard.TTL(0))).TryAcquire(ctx, "k")
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
		{"BackoffPolicy", acquire(syncguard.BackoffPolicy(nil)),
			"syncguard.BackoffPolicy: newPolicy must not be nil"},
		{"WithErrorBackoff", func() error {
			_, err := syncguard.NewMutex(g, "k", syncguard.WithErrorBackoff(-time.Second))
			return err
		}, "syncguard.WithErrorBackoff: the retry delay must be positive, got -1s"},
		{"TTL through NewMutex's WithAcquireOptions", func() error {
			_, err := syncguard.NewMutex(g, "k", syncguard.WithAcquireOptions(syncguard.TTL(-time.Second)))
			return err
		}, "syncguard.TTL: the lock TTL must be a positive whole number of milliseconds, got -1s"},
		{"WithRetention fractional", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithRetention(time.Microsecond))
			return err
		}, "syncguard.WithRetention: the retention must be 0 or a positive whole number of milliseconds, at most 100 years, got 1µs"},
		{"WithRetention zero for NewOncePerKey", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithRetention(0))
			return err
		}, "syncguard.WithRetention: the retention of NewOncePerKey must be positive, got 0s"},
		{"WithCodec", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithCodec(nil))
			return err
		}, "syncguard.WithCodec: codec must not be nil"},
		{"WithRetention negative", func() error {
			_, err := syncguard.NewFencedWriter(g, syncguard.WithRetention(-time.Minute))
			return err
		}, "syncguard.WithRetention: the retention must be 0 or a positive whole number of milliseconds, at most 100 years, got -1m0s"},
		{"WithFencedStore", func() error {
			_, err := syncguard.NewFencedWriter(g, syncguard.WithFencedStore(nil))
			return err
		}, "syncguard.WithFencedStore: store must not be nil"},
		{"WithPrefix", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithPrefix("\xff"))
			return err
		}, `syncguard.WithPrefix: the prefix must be valid UTF-8, got "\xff"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var le *syncguard.LockError
			if !errors.As(err, &le) || le.Code != driver.InvalidArgument {
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

// TestOptionNotTaken: an option given to a constructor that does not take
// it is an InvalidArgument naming the option and the constructor. New
// returns a Guard whose every call returns that error, before any I/O,
// and the primitives built on it fail the same way.
func TestOptionNotTaken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := memory.New()
	g := syncguard.New(d)
	limit := syncguard.RateLimit{Limit: 1, Period: time.Second, Burst: 1}
	bad := syncguard.New(d, syncguard.WithLogger(nil), syncguard.WithPrefix("p:"))
	const badNew = "syncguard.WithPrefix does not apply to syncguard.New"
	tests := []struct {
		name string
		call func() error
		want string // the whole message
	}{
		{"NewMutex", func() error {
			_, err := syncguard.NewMutex(g, "k", syncguard.WithOnError(nil), syncguard.WithRetention(time.Hour))
			return err
		}, "syncguard.WithRetention does not apply to syncguard.NewMutex"},
		{"NewOncePerKey", func() error {
			_, err := syncguard.NewOncePerKey[int](g, syncguard.WithFencedStore(nil))
			return err
		}, "syncguard.WithFencedStore does not apply to syncguard.NewOncePerKey"},
		{"NewFencedWriter", func() error {
			_, err := syncguard.NewFencedWriter(g, syncguard.WithNonBlocking())
			return err
		}, "syncguard.WithNonBlocking does not apply to syncguard.NewFencedWriter"},
		{"NewRateLimiter", func() error {
			_, err := syncguard.NewRateLimiter(d, limit, syncguard.WithAcquireOptions(syncguard.TTL(time.Second)))
			return err
		}, "syncguard.WithAcquireOptions does not apply to syncguard.NewRateLimiter"},
		{"New/TryAcquire", func() error {
			l, err := bad.TryAcquire(ctx, "k")
			l.Close()
			return err
		}, badNew},
		{"New/Acquire", func() error {
			l, err := bad.Acquire(ctx, "k")
			l.Close()
			return err
		}, badNew},
		{"New/Do", func() error {
			return bad.Do(ctx, "k", func(context.Context, *syncguard.Lease[memory.Capabilities]) error {
				t.Error("Do ran its function on a Guard with an invalid option")
				return nil
			})
		}, badNew},
		{"New/IsLocked", func() error { _, err := bad.IsLocked(ctx, "k"); return err }, badNew},
		{"New/Lookup", func() error { _, err := bad.Lookup(ctx, "k"); return err }, badNew},
		{"New/LookupID", func() error { _, err := bad.LookupID(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); return err }, badNew},
		{"New/Owns", func() error { _, err := bad.Owns(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); return err }, badNew},
		{"New/NewMutex", func() error { _, err := syncguard.NewMutex(bad, "k"); return err }, badNew},
		{"New/NewOncePerKey", func() error { _, err := syncguard.NewOncePerKey[int](bad); return err }, badNew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var le *syncguard.LockError
			if !errors.As(err, &le) || le.Code != driver.InvalidArgument {
				t.Fatalf("error = %v; want an InvalidArgument *LockError", err)
			}
			if le.Message != tc.want {
				t.Errorf("message = %q\nwant      %q", le.Message, tc.want)
			}
		})
	}
	// The invalid Guard made no I/O: the key is free.
	if locked, err := g.IsLocked(ctx, "k"); locked || err != nil {
		t.Errorf("IsLocked = %v, %v; want false, nil", locked, err)
	}
}
