package redis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
)

// unsubscribeTimeout bounds the SUNSUBSCRIBE sent when the last watcher of
// a channel leaves.
const unsubscribeTimeout = 2 * time.Second

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
	k, err := syncguard.NormalizeKey(key)
	if err != nil {
		return nil, nil, err
	}
	kn, err := d.names(k)
	if err != nil {
		return nil, nil, err
	}
	if err := syncguard.CheckContext(ctx); err != nil {
		return nil, nil, err
	}
	s, w, err := d.hub.add(kn.rel())
	if err != nil {
		return nil, nil, err
	}
	stop := func() { d.hub.remove(s, w) }
	select {
	case <-s.ready:
	case <-ctx.Done():
		stop()
		return nil, nil, syncguard.ContextError(ctx.Err())
	}
	if s.err != nil {
		stop()
		return nil, nil, mapError(ctx, s.err, k, "")
	}
	// A release between the caller's last attempt and the confirmation of
	// the subscription published to nobody. Look once, now that later
	// releases cannot be missed: if the key is free, signal at once.
	if locked, err := d.IsLocked(ctx, k); err == nil && !locked {
		select {
		case w.c <- struct{}{}:
		default:
		}
	}
	return w.c, stop, nil
}

// watchHub multiplexes release watchers onto one subscription per channel.
type watchHub struct {
	d      *Driver
	ctx    context.Context // ends every subscription on close
	cancel context.CancelFunc

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
}

type waiter struct {
	c      chan struct{} // capacity 1; closed when the subscription ends
	closed bool          // guarded by hub.mu
}

func newWatchHub(d *Driver) *watchHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &watchHub{d: d, ctx: ctx, cancel: cancel, subs: map[string]*chanSub{}, closing: map[string]chan struct{}{}}
}

func (h *watchHub) add(ch string) (*chanSub, *waiter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, syncguard.NewError(syncguard.ServiceUnavailable, "redis: driver closed")
	}
	s := h.subs[ch]
	if s == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		s = &chanSub{ch: ch, waiters: map[*waiter]struct{}{}, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
		h.subs[ch] = s
		prev := h.closing[ch]
		h.wg.Add(1)
		go h.run(ctx, s, prev)
	}
	w := &waiter{c: make(chan struct{}, 1)}
	s.waiters[w] = struct{}{}
	return s, w, nil
}

func (h *watchHub) remove(s *chanSub, w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := s.waiters[w]; !ok {
		return
	}
	delete(s.waiters, w)
	if len(s.waiters) == 0 && h.subs[s.ch] == s {
		delete(h.subs, s.ch)
		h.closing[s.ch] = s.done
		s.cancel()
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
	err := c.Receive(rctx, c.B().Ssubscribe().Channel(s.ch).Build(), func(rueidis.PubSubMessage) {
		h.mu.Lock()
		for w := range s.waiters {
			select {
			case w.c <- struct{}{}:
			default:
			}
		}
		h.mu.Unlock()
	})
	if err == nil {
		err = syncguard.NewError(syncguard.ServiceUnavailable, "redis: release subscription ended")
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
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}
