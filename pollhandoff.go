package syncguard

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
// waiter liveness). The attempts in between only call granted, a cheap
// read of whether the key's lock now carries the waiter's ID, and make the
// full attempt that claims it if so. A waiter that has not joined the
// queue yet (its latest full attempt did not report contention) always
// makes the full attempt.
func PollingHandoff(h *Handoff, granted func(ctx context.Context) (bool, error), renew, full time.Duration) *Handoff {
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
			ok, err := granted(ctx)
			if err != nil {
				return AcquireResult{}, err
			}
			if !ok {
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
