package driver

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPollingHandoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var log []string
		results := []AcquireResult{{Reason: ReasonLocked}, {Reason: ReasonLocked}, {Acquired: true, LockID: "w"}}
		grantedAt := 3 // the third look finds the grant
		looks := 0
		pollErr := errors.New("lookup failed")
		failLook := false
		h := &Handoff{Acquire: func(context.Context, time.Duration) (AcquireResult, error) {
			log = append(log, "full")
			r := results[0]
			results = results[1:]
			return r, nil
		}, Renew: time.Second}
		h = PollingHandoff(h, (func(_ context.Context, key string) (*LockInfo, error) {
			if key != "k" {
				t.Errorf("looked up %q; want the waiter's key", key)
			}
			if failLook {
				return nil, pollErr
			}
			looks++
			log = append(log, "look")
			switch {
			case looks >= grantedAt:
				return &LockInfo{Key: "k", LockID: "w"}, nil // granted to the waiter
			case looks == 1:
				return &LockInfo{Key: "k", LockID: "other"}, nil // still held by another
			default:
				return nil, nil // free (taken by a full attempt, not a look)
			}
		}), "k", "w", 20*time.Millisecond, 500*time.Millisecond)
		if h.Renew != 20*time.Millisecond {
			t.Errorf("Renew = %v; want 20ms", h.Renew)
		}
		attempt := func() AcquireResult {
			t.Helper()
			r, err := h.Acquire(ctx, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		attempt()                          // not queued yet: full (contended: now queued)
		time.Sleep(20 * time.Millisecond)  //
		attempt()                          // look: no grant
		time.Sleep(500 * time.Millisecond) // past full
		attempt()                          // full again (renews the place; contended)
		failLook = true
		if _, err := h.Acquire(ctx, time.Second); !errors.Is(err, pollErr) {
			t.Errorf("Acquire with a failing look = %v; want its error", err)
		}
		failLook = false
		time.Sleep(20 * time.Millisecond)
		attempt()                        // look: no grant
		if r := attempt(); !r.Acquired { // look: granted → full attempt claims it
			t.Errorf("attempt after the grant = %+v; want acquired", r)
		}
		want := []string{"full", "look", "full", "look", "look", "full"}
		if diff := cmp.Diff(want, log); diff != "" {
			t.Errorf("calls (-want +got):\n%s", diff)
		}
	})
}
