package firestore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// TestCancelledAcquireLeavesNoLock: an Acquire (or AcquirePermit) whose
// context ends at any point of its transaction, including after the commit
// was sent, does not leave the key locked (or a permit held) until its
// TTL: the best-effort release of
// docs/contract.md#contexts-and-unknown-outcomes, of the minted lock (or
// permit) ID (on a detached context, awaited by Close) frees an
// acquisition whose result the caller never saw.
func TestCancelledAcquireLeavesNoLock(t *testing.T) {
	t.Parallel()
	const key = "cancelled"
	tests := []struct {
		op      string
		acquire func(ctx context.Context, d *Driver) (driver.AcquireResult, error)
		release func(ctx context.Context, d *Driver, id string) error
		// free fails t unless nothing is held on key.
		free func(t *testing.T, d *Driver, round int)
	}{{
		op: "Acquire",
		acquire: func(ctx context.Context, d *Driver) (driver.AcquireResult, error) {
			return d.Acquire(ctx, key, time.Minute)
		},
		release: func(ctx context.Context, d *Driver, id string) error {
			_, err := d.Release(ctx, "", id)
			return err
		},
		free: func(t *testing.T, d *Driver, round int) {
			if locked, err := d.IsLocked(context.Background(), key); err != nil || locked {
				t.Fatalf("round %d: IsLocked after a cancelled Acquire = %v, %v; want a free key", round, locked, err)
			}
		},
	}, {
		op: "AcquirePermit",
		acquire: func(ctx context.Context, d *Driver) (driver.AcquireResult, error) {
			return d.AcquirePermit(ctx, key, 1, time.Minute)
		},
		release: func(ctx context.Context, d *Driver, id string) error {
			_, err := d.ReleasePermit(ctx, key, id)
			return err
		},
		free: func(t *testing.T, d *Driver, round int) {
			if p, err := d.Permits(context.Background(), key); err != nil || len(p) != 0 {
				t.Fatalf("round %d: Permits after a cancelled AcquirePermit = %v, %v; want none", round, p, err)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			t.Parallel()
			d := newDriver(t, newClient(t))
			bg := context.Background()
			// The latency of an uncontended acquisition, to spread the
			// cancellations over it.
			start := time.Now()
			r, err := tt.acquire(bg, d)
			if err != nil || !r.Acquired {
				t.Fatalf("%s = %+v, %v", tt.op, r, err)
			}
			took := time.Since(start)
			if err := tt.release(bg, d, r.LockID); err != nil {
				t.Fatal(err)
			}
			var cancelled, acquired int
			for i := range 120 {
				ctx, cancel := context.WithCancel(bg)
				time.AfterFunc(took*time.Duration(i%40)/30, cancel)
				r, err := tt.acquire(ctx, d)
				cancel()
				switch {
				case err == nil && r.Acquired:
					acquired++
					if err := tt.release(bg, d, r.LockID); err != nil {
						t.Fatal(err)
					}
				case err == nil:
					t.Fatalf("round %d: %s = %+v; want acquired or failed (nothing is held)", i, tt.op, r)
				default:
					var le *driver.LockError
					if !errors.As(err, &le) || le.Code != driver.Aborted {
						t.Fatalf("round %d: %s error %v; want Aborted", i, tt.op, err)
					}
					cancelled++
				}
				d.bg.Wait() // the best-effort release, if any
				tt.free(t, d, i)
			}
			t.Logf("%d acquired, %d cancelled (acquisition took %v)", acquired, cancelled, took)
			if cancelled == 0 {
				t.Fatalf("no %s was cancelled: the test did not exercise the path", tt.op)
			}
		})
	}
}
