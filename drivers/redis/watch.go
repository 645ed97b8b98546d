package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// unsubscribeTimeout bounds the SUNSUBSCRIBE sent when the last watcher of
// a channel leaves, and a waiter's leave script.
const unsubscribeTimeout = 2 * time.Second

// subscriptionLinger is how long a subscription stays after its last
// watcher left, so that a process that waits for the same key again soon
// (the usual case under contention: the holder releases and waits again)
// does not pay an SSUBSCRIBE and SUNSUBSCRIBE each time.
const subscriptionLinger = 500 * time.Millisecond

// WatchRelease subscribes to releases of key. The release script publishes
// on the key's channel with SPUBLISH (sharded pub/sub: in a Cluster the
// message stays on the shard that owns the key's slot), and the driver
// keeps one SSUBSCRIBE per key however many goroutines wait on it.
//
// WatchRelease returns once the subscription is confirmed by the server,
// so a later release is not missed while the connection holds; it then
// checks the key once (one IsLocked), and if the key is already free the
// channel holds a signal on return, so a release that happened just before
// the subscription is not missed either. The channel (capacity one)
// receives a value when the key is released; signals
// coalesce, and wake-ups can be spurious (the key may be taken again). An
// expiry does not signal: waiters keep a backoff fallback. If the
// subscription ends (connection trouble, [Driver.Close]) the channel is
// closed, which tells the waiter to fall back to plain backoff.
//
// stop ends the watch; it is idempotent and safe to call concurrently. The
// subscription is dropped on the server when the last watcher of the key
// stops.
func (d *Driver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	s, w, _, err := d.subscribe(ctx, kn.rel(), "", k)
	if err != nil {
		return nil, nil, err
	}
	stop := func() { d.hub.remove(s, w) }
	// A release between the caller's last attempt and the confirmation of
	// the subscription published to nobody. Look once, now that later
	// releases cannot be missed: if the key is free, signal at once.
	// The same script marks the key as watched, so that releases publish
	// on its channel.
	if locked, err := d.exec(ctx, d.s.watch, []string{kn.lock()}, nil).AsInt64(); err == nil && locked == 0 {
		d.hub.wake(w)
	}
	return w.c, stop, nil
}

// WatchPermits subscribes to permit releases of key
// ([driver.PermitWatcher]) as WatchRelease does to lock releases: a
// ReleasePermit of a live permit publishes on the key's permit channel
// (SPUBLISH <prefix>:{<tag>}:semrel:<body>), and the driver keeps one
// SSUBSCRIBE per key however many goroutines wait. The channel holds a
// signal on return, so that a release just before the subscription was
// confirmed is not missed (the waiter makes one more attempt); it is
// closed if the subscription ends.
func (d *Driver) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	s, w, _, err := d.subscribe(ctx, kn.semRel(), "", k)
	if err != nil {
		return nil, nil, err
	}
	d.hub.wake(w)
	return w.c, func() { d.hub.remove(s, w) }, nil
}

// WatchHandoff subscribes a queued waiter to releases of key (see
// [driver.HandoffWatcher]); [syncguard.Guard] uses it when it calls the
// driver directly.
//
// The waiter gets an ID of its own, minted like a lock ID (it carries the
// key's slot), which becomes the lock ID of the lock it ends up with. Its
// attempts through [driver.Handoff.Acquire] pass the ID to the acquire
// script: a contended attempt adds it to the key's queue (a sorted set in
// the key's slot, ordered by the server time of joining), a successful one
// removes it. A release pops the queue's head and grants it the lock in
// the same script (a new fence, the waiter's TTL from the release's server
// time), then publishes the grant on the inbox channel of the waiter's
// driver (<prefix>:{<tag>}:in:<inbox>, one per driver and slot). Only
// that process receives it and only that waiter wakes, and it has the
// lock without another round trip: waiters no longer race for the key on
// each release, and the releaser cannot barge in ahead of the queue.
// Without a grant (empty queue) the release publishes "" on the key's
// channel, which wakes the plain watchers of [Driver.WatchRelease].
//
// If the grant message is lost (the subscription broke), the waiter's
// next attempt finds the live lock under its own ID and claims it. A
// waiter that stops waiting (Stop) leaves the queue, and a lock granted to
// it meanwhile is released and handed on. Each contended attempt renews a
// liveness marker of the waiter (PX 3 s), and Guard attempts at least
// every second while it waits (Handoff.Renew), so a release skips the
// entry of a waiter that crashed more than 3 s ago. A waiter that crashes
// within those 3 s before its turn can still be granted the key, which then
// stays locked until that TTL, exactly as if it had crashed just after
// acquiring it.
//
// The inbox subscription (SSUBSCRIBE) is shared by every waiter of the
// driver in that slot and lingers like WatchRelease's. The channel holds
// a signal on return: the waiter's next attempt joins the queue, and it
// also covers a release between the caller's previous attempt and the
// subscription.
//
// If the subscription fails (the server or a proxy refuses SSUBSCRIBE, or
// its connection fails), WatchHandoff still returns a waiter, whose
// channel is already closed: it queues with its attempts and claims a
// grant with its next attempt, so it keeps its turn among subscribed
// waiters (a plain poller would find the key granted on every release and
// could wait until its timeout). Under Guard it looks for a grant every
// 20 ms (a lock lookup, [driver.PollingHandoff]) and renews its place
// with a full attempt every 500 ms. Only ctx ending, a closed driver and
// an invalid key are errors.
func (d *Driver) WatchHandoff(ctx context.Context, key string) (*driver.Handoff, error) {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return nil, err
	}
	id := newLockID(keySlot(kn.body))
	s, w, refused, err := d.subscribe(ctx, d.inboxChannel(kn), id, k)
	if refused {
		// No subscription: a waiter that queues and claims its grants
		// by its attempts alone, rather than a plain poller that the
		// queue's hand-offs would starve.
		w = &waiter{c: make(chan struct{}), id: id}
		close(w.c)
		return driver.PollingHandoff(d.newWaiter(k, kn, id, nil, w), d.LookupByKey, k, id, unheardRenew, unheardFull), nil
	}
	if err != nil {
		return nil, err
	}
	d.hub.wake(w)
	return d.newWaiter(k, kn, id, s, w), nil
}

// subscribe adds a watcher (waiter ID id, "" for a plain watcher) to the
// subscription of channel ch and waits until the server confirmed it, or
// ctx ends; on failure the watcher is removed again. k (the normalised key)
// goes into a mapped error. refused reports that the subscription itself
// failed (the server refused it, or the connection for it failed), as
// opposed to ctx ending or the driver being closed.
func (d *Driver) subscribe(ctx context.Context, ch, id, k string) (s *chanSub, w *waiter, refused bool, err error) {
	s, w, err = d.hub.add(ch, id)
	if err != nil {
		return nil, nil, false, err
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		d.hub.remove(s, w)
		return nil, nil, false, driver.ContextError(ctx.Err())
	}
	if s.err != nil {
		d.hub.remove(s, w)
		if ctx.Err() != nil {
			return nil, nil, false, driver.ContextError(ctx.Err())
		}
		return nil, nil, true, mapError(ctx, s.err, k, "")
	}
	return s, w, false, nil
}

// WarmHandoff is WatchHandoff without any I/O, for a key whose
// subscription this driver already holds (see
// [driver.HandoffWatcher]): the waiter's first attempt queues at once,
// and no grant can be missed since the subscription was confirmed before
// it. It returns nil for a key without a live subscription, or an invalid
// key.
func (d *Driver) WarmHandoff(key string) *driver.Handoff {
	if d.hub.live.Load() == 0 {
		return nil // no subscription at all: skip the key's names
	}
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return nil
	}
	kn, err := d.names(k)
	if err != nil {
		return nil
	}
	id := newLockID(keySlot(kn.body))
	s, w := d.hub.addIfLive(d.inboxChannel(kn), id)
	if s == nil {
		return nil
	}
	return d.newWaiter(k, kn, id, s, w)
}

// newWaiter is the queued waiter id of the normalised key k, subscribed
// through s as w, or, with s nil, not subscribed (w.c closed).
func (d *Driver) newWaiter(k string, kn keyNames, id string, s *chanSub, w *waiter) *driver.Handoff {
	var (
		queued atomic.Bool  // an attempt may have queued id (or acquired under it unseen)
		ttlMs  atomic.Int64 // of the latest attempt: the queue member is id + ttl
		once   sync.Once
	)
	return &driver.Handoff{
		C: w.c,
		Acquire: func(ctx context.Context, ttl time.Duration) (driver.AcquireResult, error) {
			if g, ok := d.hub.takeGrant(w); ok {
				queued.Store(false)
				return driver.AcquireResult{Acquired: true, LockID: id, Fence: g.fence, ExpiresAtMs: g.exp}, nil
			}
			if ms, err := driver.TTLMillis(ttl); err == nil {
				ttlMs.Store(ms)
			}
			queued.Store(true)
			r, err := d.acquire(ctx, k, ttl, id)
			if err == nil && r.Acquired {
				queued.Store(false)
				d.hub.takeGrant(w) // a grant message for the lock just claimed
			}
			return r, err
		},
		Stop: func() {
			once.Do(func() {
				if queued.Load() {
					d.leave(kn, id, ttlMs.Load())
				}
				if s != nil {
					d.hub.remove(s, w)
				}
			})
		},
		Renew: waiterRenew,
	}
}

// inboxLen is the length of a driver's inbox ID (inboxLenStr in the
// scripts).
const inboxLen = 8

// newInbox mints a driver's inbox ID: inboxLen base64url characters.
func newInbox() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// inboxChannel is the channel on which releases in kn's slot send this
// driver's queued waiters their grants: one subscription per slot (not per
// key) that only this driver receives.
func (d *Driver) inboxChannel(kn keyNames) string { return kn.sp + "in:" + d.inbox }

// leave takes waiter id out of the queue of kn, releases a lock granted
// to it (handing the key on) and retires id, so that an attempt of the
// waiter still on its way to the server neither queues it again nor
// acquires. Errors are ignored: the entry ages out, a granted lock
// expires.
func (d *Driver) leave(kn keyNames, id string, ttlMs int64) {
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
	defer cancel()
	_ = d.exec(ctx, d.s.release, []string{kn.sp + "id:" + id, kn.lock(), kn.queue()},
		[]string{id, kn.sp, goneTTLStr, id + d.inbox + formatInt(ttlMs)}).Error()
}

// grant is a lock that a release granted to a queued waiter.
type grant struct {
	fence driver.Fence
	exp   int64
}

// parseGrant decodes "<waiterID>|<fence>|<expiresAtMs>|<acquiredAtMs>".
func parseGrant(msg string) (id string, g grant, ok bool) {
	if len(msg) < driver.LockIDLen+2 || msg[driver.LockIDLen] != '|' {
		return "", grant{}, false
	}
	id = msg[:driver.LockIDLen]
	f := strings.Split(msg[driver.LockIDLen+1:], "|")
	if len(f) != 3 {
		return "", grant{}, false
	}
	n, err1 := strconv.ParseInt(f[0], 10, 64)
	exp, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return "", grant{}, false
	}
	fence, _, err := driver.CheckNewFence(n)
	if err != nil {
		return "", grant{}, false
	}
	return id, grant{fence: fence, exp: exp}, true
}

// takeGrant returns and forgets the grant w received, if any.
func (h *watchHub) takeGrant(w *waiter) (grant, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := w.grant
	w.grant = nil
	if g == nil {
		return grant{}, false
	}
	return *g, true
}

// watchHub multiplexes release watchers onto one subscription per channel.
type watchHub struct {
	d      *Driver
	ctx    context.Context // ends every subscription on close
	cancel context.CancelFunc

	live atomic.Int32 // len(subs), readable without mu

	mu      sync.Mutex
	subs    map[string]*chanSub      // live subscription per channel
	closing map[string]chan struct{} // channel → done of a subscription being torn down
	closed  bool
	wg      sync.WaitGroup
}

// chanSub is one SSUBSCRIBE and its watchers.
type chanSub struct {
	ch      string
	waiters map[*waiter]struct{} // guarded by hub.mu
	ready   chan struct{}        // closed when subscribed or failed
	err     error                // set before ready is closed
	cancel  context.CancelFunc
	done    chan struct{} // closed after the server-side subscription is gone
	linger  *time.Timer   // tears the subscription down; set while it has no waiters
}

type waiter struct {
	c      chan struct{} // capacity 1; closed when the subscription ends
	id     string        // queued waiter's ID ("" for a plain watcher)
	grant  *grant        // a lock granted to the queued waiter; guarded by hub.mu
	closed bool          // guarded by hub.mu
}

// signal wakes w without blocking (signals coalesce). The caller holds
// hub.mu and w is not closed; otherwise it calls [watchHub.wake].
func (w *waiter) signal() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// wake signals w unless its subscription has ended meanwhile (w.c is then
// closed, which already tells the waiter, and a send would panic).
func (h *watchHub) wake(w *waiter) {
	h.mu.Lock()
	if !w.closed {
		w.signal()
	}
	h.mu.Unlock()
}

func newWatchHub(d *Driver) *watchHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &watchHub{d: d, ctx: ctx, cancel: cancel, subs: map[string]*chanSub{}, closing: map[string]chan struct{}{}}
}

func (h *watchHub) add(ch, id string) (*chanSub, *waiter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, driver.NewError(driver.ServiceUnavailable, "redis: driver closed")
	}
	s := h.subs[ch]
	if s == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		s = &chanSub{ch: ch, waiters: map[*waiter]struct{}{}, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
		h.subs[ch] = s
		h.live.Store(int32(len(h.subs)))
		prev := h.closing[ch]
		h.wg.Add(1)
		go h.run(ctx, s, prev)
	} else if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	w := &waiter{c: make(chan struct{}, 1), id: id}
	s.waiters[w] = struct{}{}
	return s, w, nil
}

// addIfLive adds a waiter to the channel's subscription if it is live and
// confirmed, else returns nil.
func (h *watchHub) addIfLive(ch, id string) (*chanSub, *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.subs[ch]
	if h.closed || s == nil {
		return nil, nil
	}
	select {
	case <-s.ready:
		if s.err != nil {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	w := &waiter{c: make(chan struct{}, 1), id: id}
	s.waiters[w] = struct{}{}
	return s, w
}

func (h *watchHub) remove(s *chanSub, w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := s.waiters[w]; !ok {
		return
	}
	delete(s.waiters, w)
	if len(s.waiters) == 0 && h.subs[s.ch] == s && s.linger == nil && !h.closed {
		var t *time.Timer
		t = time.AfterFunc(subscriptionLinger, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if s.linger == t && len(s.waiters) == 0 && h.subs[s.ch] == s {
				s.linger = nil
				delete(h.subs, s.ch)
				h.live.Store(int32(len(h.subs)))
				h.closing[s.ch] = s.done
				s.cancel()
			}
		})
		s.linger = t
	}
}

// run holds the subscription of s until its context ends, then removes it
// on the server. A subscription of the same channel that a previous chanSub
// is still tearing down waits for that first (prev), so an UNSUBSCRIBE can
// never cancel the newer one.
func (h *watchHub) run(ctx context.Context, s *chanSub, prev chan struct{}) {
	defer h.wg.Done()
	defer close(s.done)
	var once sync.Once
	markReady := func() { once.Do(func() { close(s.ready) }) }
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
		}
	}
	c := h.d.client
	rctx := rueidis.WithOnSubscriptionHook(ctx, func(sub rueidis.PubSubSubscription) {
		if sub.Kind == "ssubscribe" && sub.Channel == s.ch {
			markReady()
		}
	})
	err := c.Receive(rctx, c.B().Ssubscribe().Channel(s.ch).Build(), func(m rueidis.PubSubMessage) {
		// The message is a grant to one queued waiter, or empty (the key
		// is free: anyone). Plain watchers take every message.
		id, g, isGrant := parseGrant(m.Message)
		h.mu.Lock()
		for w := range s.waiters {
			if w.id != "" && isGrant {
				if w.id != id {
					continue
				}
				w.grant = &g
			}
			w.signal()
		}
		h.mu.Unlock()
	})
	if err == nil {
		err = driver.NewError(driver.ServiceUnavailable, "redis: release subscription ended")
	}
	select {
	case <-s.ready:
	default:
		s.err = err
		markReady()
	}
	// Drop the server-side subscription (Receive leaves it in place).
	uctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
	_ = c.Do(uctx, c.B().Sunsubscribe().Channel(s.ch).Build()).Error()
	cancel()

	h.mu.Lock()
	if h.subs[s.ch] == s { // the subscription died under its watchers
		delete(h.subs, s.ch)
		h.live.Store(int32(len(h.subs)))
	}
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
	if h.closing[s.ch] == s.done {
		delete(h.closing, s.ch)
	}
	for w := range s.waiters {
		if !w.closed {
			w.closed = true
			close(w.c)
		}
	}
	h.mu.Unlock()
}

// close ends every subscription and waits for them to be torn down.
func (h *watchHub) close() {
	h.mu.Lock()
	h.closed = true
	for _, s := range h.subs {
		if s.linger != nil {
			s.linger.Stop()
			s.linger = nil
		}
	}
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}
