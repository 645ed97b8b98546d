package firestore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// TestCancelledAcquireLeavesNoLock: an Acquire whose context ends at any
// point of its transaction, including after the commit was sent, does not
// leave the key locked until its TTL: the best-effort release of docs/contract.md#contexts-and-unknown-outcomes, of
// the minted lock ID (on a detached context, awaited by Close) frees an
// acquisition whose result the caller never saw.
func TestCancelledAcquireLeavesNoLock(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	d := newDriver(t, c)
	bg := context.Background()
	// The latency of an uncontended acquisition, to spread the
	// cancellations over it.
	start := time.Now()
	r, err := d.Acquire(bg, "cancelled", time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	took := time.Since(start)
	if _, err := d.Release(bg, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	var cancelled, acquired int
	for i := range 120 {
		ctx, cancel := context.WithCancel(bg)
		time.AfterFunc(took*time.Duration(i%40)/30, cancel)
		r, err := d.Acquire(ctx, "cancelled", time.Minute)
		cancel()
		switch {
		case err == nil && r.Acquired:
			acquired++
			if _, err := d.Release(bg, "", r.LockID); err != nil {
				t.Fatal(err)
			}
		case err == nil:
			t.Fatalf("round %d: Acquire = %+v; want acquired or failed (the key is free)", i, r)
		default:
			var le *driver.LockError
			if !errors.As(err, &le) || le.Code != driver.Aborted {
				t.Fatalf("round %d: Acquire error %v; want Aborted", i, err)
			}
			cancelled++
		}
		d.bg.Wait() // the best-effort release, if any
		if locked, err := d.IsLocked(bg, "cancelled"); err != nil || locked {
			t.Fatalf("round %d: IsLocked after a cancelled Acquire = %v, %v; want a free key", i, locked, err)
		}
	}
	t.Logf("%d acquired, %d cancelled (acquisition took %v)", acquired, cancelled, took)
	if cancelled == 0 {
		t.Fatal("no Acquire was cancelled: the test did not exercise the path")
	}
}
