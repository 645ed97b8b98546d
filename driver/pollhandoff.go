package driver

import (
	"context"
	"sync"
	"time"
)

// PollingHandoff adapts the queued waiter h of a [HandoffWatcher] that
// cannot notify it (its subscription was refused: h.C is closed) so that a
// lock the hand-off grants it does not sit unclaimed for long. The waiter's
// Renew becomes renew, so Guard attempts at least that often; but only
// every full does an attempt go through h.Acquire, which renews the
// waiter's place in the queue (full must be well within the driver's
// waiter liveness). The attempts in between only look up key's live lock
// through lookup and, if it carries waiterID (the hand-off granted it to the
// waiter), make the full attempt that claims it. A waiter that has not
// joined the queue yet (its latest full attempt did not report
// contention) always makes the full attempt.
func PollingHandoff(h *Handoff, lookup func(ctx context.Context, key string) (*LockInfo, error), key, waiterID string, renew, full time.Duration) *Handoff {
	var (
		mu     sync.Mutex
		last   time.Time // of the latest full attempt
		joined bool      // it reported contention: the waiter is queued
	)
	acquire := h.Acquire
	h.Acquire = func(ctx context.Context, ttl time.Duration) (AcquireResult, error) {
		mu.Lock()
		poll := joined && time.Since(last) < full
		mu.Unlock()
		if poll {
			info, err := lookup(ctx, key)
			if err != nil {
				return AcquireResult{}, err
			}
			if info == nil || info.LockID != waiterID {
				return AcquireResult{Reason: ReasonLocked}, nil
			}
		}
		r, err := acquire(ctx, ttl)
		mu.Lock()
		last, joined = time.Now(), err == nil && !r.Acquired
		mu.Unlock()
		return r, err
	}
	h.Renew = renew
	return h
}
