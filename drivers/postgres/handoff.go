package postgres

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
)

// Liveness of a queued waiter: a release grants the key only to a waiter
// whose place was renewed within waiterLive (each attempt renews it), so a
// waiter whose process died is skipped at most that long after its last
// attempt. Guard attempts at least every waiterRenew while it waits (see
// [driver.Handoff] Renew).
const (
	waiterLive  = 3 * time.Second
	waiterRenew = time.Second
	// A waiter that gets no notifications (no subscription) learns of a
	// grant only by looking: under Guard it looks every unheardRenew (a
	// lock lookup) and makes a full attempt, which renews its place, every
	// unheardFull (see [driver.PollingHandoff]).
	unheardRenew = 20 * time.Millisecond
	unheardFull  = 500 * time.Millisecond
)

// warmFor is how long after its last waiter left a key counts as
// contended for WarmHandoff.
const warmFor = 5 * time.Second

// maxRecent bounds the keys remembered for WarmHandoff and the lock IDs
// remembered as handed over (see Driver.handed).
const maxRecent = 4096

// noteRecent records that a queued waiter of key hash h left; l.mu is held.
func (l *listener) noteRecent(h string) {
	if len(l.recent) >= maxRecent {
		for k, t := range l.recent {
			if time.Since(t) >= warmFor {
				delete(l.recent, k)
			}
		}
		if len(l.recent) >= maxRecent {
			clear(l.recent)
		}
	}
	l.recent[h] = time.Now()
}

// leaveTimeout bounds the background leave of a waiter that stopped.
const leaveTimeout = 5 * time.Second

// grant is a lock that a release granted to a queued waiter.
type grant struct {
	fence driver.Fence
	exp   int64
}

// grantPrefix starts the NOTIFY payload of a grant.
const grantPrefix = "g:"

// parseGrant decodes "g:<waiterID>|<fence>|<expiresAtMs>|<acquiredAtMs>".
func parseGrant(msg string) (id string, g grant, ok bool) {
	rest, ok := strings.CutPrefix(msg, grantPrefix)
	if !ok || len(rest) < driver.LockIDLen+1 || rest[driver.LockIDLen] != '|' {
		return "", grant{}, false
	}
	id = rest[:driver.LockIDLen]
	f := strings.Split(rest[driver.LockIDLen+1:], "|")
	if len(f) != 3 {
		return "", grant{}, false
	}
	fence, err1 := driver.ParseFence(f[0])
	exp, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return "", grant{}, false
	}
	return id, grant{fence: fence, exp: exp}, true
}

// takeGrant returns and forgets the grant w received, if any.
func (l *listener) takeGrant(w *watcher) (grant, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := w.grant
	w.grant = nil
	if g == nil {
		return grant{}, false
	}
	return *g, true
}

// WatchHandoff implements [driver.HandoffWatcher]: a first-come,
// first-served queue of the waiters of key, in the waiter table
// ("<locks>_waiters", created by [Setup]). [syncguard.Guard] uses it when
// it has to wait for a key.
//
// The waiter's attempts ([driver.Handoff] Acquire) run in one round
// trip each, serialised with the key's other acquirers by its advisory
// lock: a contended attempt joins the queue (or renews its place), ordered
// by the server time of joining. A Release of the key then hands it over
// to the oldest waiter whose place is live: it rewrites the lock for that
// waiter (the waiter's ID becomes its lock ID, with the next fence and a
// TTL from the release's server time) in the same transaction, and sends
// the grant in a NOTIFY that only that waiter acts on. The waiter wakes
// already holding the key, with no further round trip. The key is never
// free in between, so nobody barges in, and a releaser that wants the key
// again queues behind the others.
//
// A waiter that stops waiting leaves the queue, and a lock granted to it
// meanwhile is released (and handed on) in the background. A waiter whose
// process dies stops renewing its place and is skipped 3 s after its last
// attempt; if it dies within those 3 s of being granted the key, the key
// stays locked until that lock's TTL, as if it had died just after
// acquiring it.
//
// The channel holds a signal on return, so that the first attempt, which
// queues the waiter, happens at once. Notifications arrive through the
// same LISTEN connection as [Driver.WatchRelease]'s; a reconnection wakes
// every waiter, whose next attempt claims a grant it may have missed.
//
// Without notifications (with [WithWakeups](false), say behind a
// connection pooler that does not support LISTEN, or while the LISTEN
// connection fails) WatchHandoff still returns a waiter, whose channel is
// already closed: it queues with its attempts and claims a grant with its
// next attempt, so it keeps its turn among the waiters of processes that
// do listen (a plain poller would find the key handed over on every
// release and could wait until its timeout). Under Guard it looks for a
// grant every 20 ms (a lock lookup, [driver.PollingHandoff]) and renews
// its place with a full attempt every 500 ms.
// Only ctx ending, a closed driver and an invalid key are errors.
// WatchRelease, which has no such fallback, fails instead.
func (d *Driver) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	k, base, fk, err := lockKeys(key)
	if err != nil {
		return nil, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1), id: driver.NewLockID()}
	stop, refused, err := d.subscribe(ctx, payloadFor(base), w)
	if refused {
		// No notifications: a waiter that queues and claims its grants by
		// its attempts alone, rather than a plain poller that the queue's
		// hand-offs would starve.
		w.ch = make(chan struct{})
		close(w.ch)
		return driver.PollingHandoff(d.newWaiter(k, base, fk, w, func() {}), d.LookupByKey, k, w.id, unheardRenew, unheardFull), nil
	}
	if err != nil {
		return nil, withKey(err, k)
	}
	select { // the listener may have signalled w already
	case w.ch <- struct{}{}:
	default:
	}
	return d.newWaiter(k, base, fk, w, stop), nil
}

// WarmHandoff implements [driver.HandoffWatcher]: without any I/O, it
// returns a new waiter of key when the LISTEN connection is active and
// another waiter of this driver is waiting for key, or was within the last
// warmFor (5 s); otherwise nil. Its first attempt queues at once, saving
// the plain attempt that would most likely find the key taken.
func (d *Driver) WarmHandoff(key string) *driver.Handoff {
	if !d.opts.wakeups {
		return nil
	}
	k, base, fk, err := lockKeys(key)
	if err != nil {
		return nil
	}
	h := payloadFor(base)
	l := d.lis
	l.mu.Lock()
	busy := l.up && !l.closed && (len(l.watchers[h]) > 0 || time.Since(l.recent[h]) < warmFor)
	l.mu.Unlock()
	if !busy {
		return nil
	}
	w := &watcher{ch: make(chan struct{}, 1), id: driver.NewLockID()}
	ready, _, err := l.add(h, w)
	if err != nil || ready != nil { // closed, or LISTEN went down meanwhile
		l.remove(h, w)
		return nil
	}
	var once sync.Once
	return d.newWaiter(k, base, fk, w, func() { once.Do(func() { l.remove(h, w) }) })
}

// newWaiter is the queued waiter w of the normalised key k (base key base,
// fence key fk); stop unsubscribes it.
func (d *Driver) newWaiter(k, base, fk string, w *watcher, stop func()) *driver.Handoff {
	var (
		queued atomic.Bool // an attempt may have queued w (or acquired under its ID unseen)
		once   sync.Once
	)
	return &driver.Handoff{
		C: w.ch,
		Acquire: func(ctx context.Context, ttl time.Duration) (driver.AcquireResult, error) {
			if g, ok := d.lis.takeGrant(w); ok {
				queued.Store(false)
				d.markContended(w.id)
				return driver.AcquireResult{Acquired: true, LockID: w.id, Fence: g.fence, ExpiresAtMs: g.exp}, nil
			}
			queued.Store(true)
			r, err := d.acquireQueued(ctx, k, base, fk, w.id, ttl)
			if err == nil && r.Acquired {
				queued.Store(false)
				d.lis.takeGrant(w) // a grant message for the lock just claimed
				d.markContended(w.id)
			}
			return r, err
		},
		Stop: func() {
			once.Do(func() {
				stop()
				if queued.Load() {
					d.leave(base, w.id)
				}
			})
		},
		Renew: waiterRenew,
	}
}

// leave takes waiter id out of base's queue and then releases a lock
// granted to it (handing the key on), in the background. Leaving first
// (under the key's advisory lock, leaving a tombstone) makes an attempt of
// the waiter that is still in flight a no-op, so nothing it may still
// write escapes the release. Errors are ignored: the place lapses, a
// granted lock expires.
func (d *Driver) leave(base, id string) {
	d.goBackground(leaveTimeout, func(ctx context.Context) { d.giveUp(ctx, base, id) })
}

// giveUp makes lock ID id unusable for acquisitions of base (a tombstone,
// under the key's advisory lock) and then releases it, so that a lock it
// holds, or an attempt of it still in flight, is undone.
func (d *Driver) giveUp(ctx context.Context, base, id string) {
	b := &pgx.Batch{}
	b.Queue(d.q.advisory, base)
	b.Queue(d.q.leave, base, id)
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return
	}
	_, _ = d.Release(ctx, "", id)
}

// acquireQueued is one attempt of the queued waiter id (see WatchHandoff)
// on the normalised key k. Its outcome, when unknown (ctx ended in
// flight), is settled by the waiter's Stop, which leaves and releases id.
func (d *Driver) acquireQueued(ctx context.Context, k, base, fk, id string, ttl time.Duration) (driver.AcquireResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	var (
		free        bool
		next        int64
		exp, fenceW *int64
		ownExp      *int64
		ownFence    *string
	)
	live := d.opts.waiterLive
	if live <= 0 {
		live = waiterLive
	}
	b := &pgx.Batch{}
	b.Queue(d.q.advisory, base)
	b.Queue(d.q.acquireQueued, base, fk, id, dbText(k), ttlMs, int64(driver.FenceMax), live.Milliseconds()).
		QueryRow(func(row pgx.Row) error {
			// Unused columns: the server time, and (queued,
			// synchronous_commit) for the statement's own use.
			return row.Scan(&free, &next, &exp, &fenceW, nil, &ownExp, &ownFence, nil, nil)
		})
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return driver.AcquireResult{}, withKey(mapError(ctx, err), k)
	}
	if ownExp != nil && ownFence != nil { // a grant, claimed
		f, err := driver.ParseFence(*ownFence)
		if err != nil {
			return driver.AcquireResult{}, &driver.LockError{Code: driver.Internal,
				Message: "stored fence is malformed", Key: k, Cause: err}
		}
		return driver.AcquireResult{Acquired: true, LockID: id, Fence: f, ExpiresAtMs: *ownExp}, nil
	}
	return d.acquired(ctx, k, id, free, next, exp, fenceW)
}

// markContended remembers that lock ID id was taken by a waiter, so that
// its Release goes straight to the hand-off statement (the key most likely
// has waiters). A hint only: it is bounded, and forgotten at release.
func (d *Driver) markContended(id string) {
	d.handedMu.Lock()
	defer d.handedMu.Unlock()
	if len(d.handed) >= maxRecent {
		clear(d.handed)
	}
	d.handed[id] = struct{}{}
}

// wasContended reports (and forgets) whether markContended saw id.
func (d *Driver) wasContended(id string) bool {
	d.handedMu.Lock()
	defer d.handedMu.Unlock()
	_, ok := d.handed[id]
	delete(d.handed, id)
	return ok
}
