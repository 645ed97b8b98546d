package memory

import (
	"context"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// waiter is one queued waiter of a key: the state behind a
// [driver.Handoff] of this driver.
type waiter struct {
	h   driver.Handoff // returned to the caller; h.C is ch
	d   *Driver
	ch  chan struct{} // capacity 1; never closed
	key string        // normalised; immutable
	sh  *shard        // shard of key; immutable

	// Guarded by sh.mu. Invariants: queued or granted implies id != "" and
	// ks != nil; granted implies !queued.
	id         string    // the waiter's ID ("" until first needed); the lock ID of the lock it gets
	ttlMs      int64     // TTL of its latest attempt: that of a lock granted to it
	ks         *keyState // the key's state, once an attempt has queued it
	prev, next *waiter   // neighbours in ks's queue while queued
	queued     bool
	granted    bool // a release granted it the lock that ks holds under id; not yet claimed
	stopped    bool
}

// grant is what a hand-off wrote, for the fence warning logged outside the
// critical section.
type grant struct {
	fence driver.Fence
	warn  bool
}

// WatchHandoff returns a new queued waiter of key (see
// [driver.HandoffWatcher]): a first-come-first-served hand-off that
// replaces the wake-everyone of [Driver.WatchRelease] for [syncguard.Guard].
//
// Each key has a FIFO queue of waiters. A waiter's ID is minted like a
// lock ID and becomes the lock ID of the lock it gets. An attempt through
// [driver.Handoff.Acquire] is one normal acquisition under that ID: a
// free (or expired) key is taken, and the waiter leaves the queue; a
// contended attempt puts the waiter at the tail of the queue the first
// time and keeps its place on later attempts, renewing the TTL it asks
// for. A [Driver.Release] of the key's lock grants the key, in the same
// atomic step, to the queue's head: a new lock under the waiter's ID with
// the key's next fence and ExpiresAtMs = now + the waiter's latest TTL,
// indexed like any lock (Release, Extend and LookupByID by the waiter's
// ID work at once). Only that waiter is signalled; its next Acquire
// returns the grant without another acquisition. Plain Acquire and
// TryAcquire calls see a granted key as locked, as it is. Plain
// [Driver.WatchRelease] watchers are still signalled on every release.
//
// A free key is taken by whichever attempt comes first, queued or not (as
// with the Redis driver): the queue orders waiters only while the key is
// held, since every release grants it on. The key is free with waiters
// queued only after a lock expired without a release; the queue's head is
// then signalled when the expired data is overwritten or swept, and the
// waiters' backoff covers the rest.
//
// Stop leaves the queue; if the waiter was granted a lock that its Acquire
// has not claimed, Stop releases it, which hands the key on to the next
// waiter. Stop is idempotent and must be called once the caller stops
// waiting (a waiter abandoned without Stop is granted the key in its turn
// and holds it until that TTL). An Acquire after Stop is a plain attempt
// that never queues. No goroutine runs per waiter, Renew is 0 (a waiter
// of this process cannot die without its process), and C is never
// closed.
//
// The returned waiter's C holds one signal, so that its first attempt
// happens at once.
func (d *Driver) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, err
	}
	w := d.newWaiter(k)
	w.ch <- struct{}{}
	return &w.h, nil
}

// WarmHandoff is WatchHandoff for a caller about to make its first
// attempt (see [driver.HandoffWatcher]): in-process there is no
// subscription to set up, so it returns a new waiter, whose C holds no
// signal, whenever that first attempt would queue, that is when a live
// lock holds key. It returns nil for a free key (and for an invalid key):
// the first attempt is then a plain Acquire of the driver the caller
// holds (a decorator of this Driver stays in the call path), which
// usually takes the key, and no waiter is allocated on the uncontended
// path; if it loses a race, the caller subscribes with WatchHandoff. The
// look at the key is one short critical section, no I/O.
func (d *Driver) WarmHandoff(key string) *driver.Handoff {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return nil
	}
	sh, nowMs, _ := d.lockShard(k)
	ks := sh.keys[k]
	held := ks != nil && ks.lockID != "" && driver.IsLive(ks.expiresAtMs, nowMs)
	sh.mu.Unlock()
	if !held {
		return nil
	}
	return &d.newWaiter(k).h
}

func (d *Driver) newWaiter(k string) *waiter {
	w := &waiter{d: d, ch: make(chan struct{}, 1), key: k, sh: d.shardFor(k)}
	w.h = driver.Handoff{C: w.ch, Acquire: w.acquire, Stop: w.stop}
	return w
}

// signal wakes w without blocking; signals coalesce.
func (w *waiter) signal() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// acquire is Handoff.Acquire: it claims a lock granted to w, or makes one
// acquisition attempt under w's ID, queuing w if the key is held.
func (w *waiter) acquire(ctx context.Context, ttl time.Duration) (driver.AcquireResult, error) {
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	d, sh := w.d, w.sh
	sh.mu.Lock()
	nowMs, nowNs := d.now()
	if w.granted {
		w.granted = false
		ks := w.ks
		if ks.lockID == w.id && driver.IsLive(ks.expiresAtMs, nowMs) {
			res := driver.AcquireResult{Acquired: true, LockID: w.id, Fence: driver.Fence(ks.fence), ExpiresAtMs: ks.expiresAtMs}
			w.id = "" // a later attempt (a misuse) would get a lock of its own
			sh.mu.Unlock()
			return res, nil
		}
		// The grant expired unclaimed (or was overwritten after its
		// expiry): attempt afresh under a new ID, so that no lock ID is
		// ever used for two locks.
		w.id = ""
	}
	res, ks, warn, err := d.acquireLocked(sh, sh.keys[w.key], w.key, w.id, ttlMs, nowMs, nowNs)
	switch {
	case err != nil:
	case res.Acquired:
		if w.queued {
			ks.unlink(w)
		}
		w.id = ""
	case !w.stopped:
		w.ttlMs = ttlMs
		if !w.queued {
			if w.id == "" {
				w.id = driver.NewLockID()
			}
			w.ks = ks
			ks.push(w)
		}
	}
	sh.mu.Unlock()
	if warn {
		d.warnFence(ctx, w.key, res.Fence)
	}
	return res, err
}

// stop is Handoff.Stop: w leaves the queue and hands on a lock it was
// granted and has not claimed.
func (w *waiter) stop() {
	d, sh := w.d, w.sh
	sh.mu.Lock()
	if w.stopped {
		sh.mu.Unlock()
		return
	}
	w.stopped = true
	if w.queued {
		w.ks.unlink(w)
	}
	var g grant
	if w.granted {
		w.granted = false
		if ks := w.ks; ks.lockID == w.id {
			nowMs, nowNs := d.now()
			d.dropLock(sh, ks) // unindexes w.id: nobody else ever knew it
			if ks.qhead != nil {
				g = d.handOff(sh, ks, nowMs)
			}
			d.sweep(sh, nowMs, nowNs)
		}
	}
	sh.mu.Unlock()
	if g.warn {
		d.warnFence(context.Background(), w.key, g.fence)
	}
}

// handOff grants the key of ks, which holds no lock data, to the head of
// its queue: a new lock under the waiter's ID with the key's next fence,
// expiring at nowMs + the waiter's TTL, and a signal to that waiter only.
// If the key's fences are exhausted it grants nothing and only signals the
// head, whose next attempt reports the error. The caller holds sh.mu.
func (d *Driver) handOff(sh *shard, ks *keyState, nowMs int64) grant {
	w := ks.qhead
	ks.unlink(w)
	fence, warn, err := driver.CheckNewFence(ks.fence + 1)
	if err == nil {
		d.writeLock(sh, ks, w.id, fence, nowMs+w.ttlMs, nowMs)
		w.granted = true
	}
	w.signal()
	return grant{fence: fence, warn: warn && err == nil}
}

// push appends w to the queue of ks. The caller holds ks.sh.mu.
func (ks *keyState) push(w *waiter) {
	w.prev, w.next = ks.qtail, nil
	if ks.qtail != nil {
		ks.qtail.next = w
	} else {
		ks.qhead = w
	}
	ks.qtail = w
	w.queued = true
}

// unlink removes the queued w from the queue of ks. The caller holds
// ks.sh.mu.
func (ks *keyState) unlink(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		ks.qhead = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		ks.qtail = w.prev
	}
	w.prev, w.next = nil, nil
	w.queued = false
}
