package memory

import (
	"context"

	"github.com/syncguard/syncguard/driver"
)

// watcher is one WatchRelease subscription.
type watcher struct {
	ch      chan struct{} // capacity 1; never closed
	key     string
	permits bool // a WatchPermits subscription
	active  bool // guarded by the shard's mu
}

// WatchRelease subscribes to releases of key. The returned channel (capacity
// one, never closed) receives a value when the key's lock is released, when
// an expired lock of the key is overwritten by a new acquisition, and when
// its data is cleaned up; signals coalesce and are never blocking, and
// spurious wake-ups are possible (the key may already be taken again).
// An expiry by itself does not signal: waiters still need their backoff
// fallback.
//
// stop ends the subscription; it is idempotent and safe to call
// concurrently. The subscription also ends when ctx is done. No goroutine
// runs per watcher.
func (d *Driver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	w, stop, err := d.watch(ctx, key, false)
	if err != nil {
		return nil, nil, err
	}
	return w.ch, stop, nil
}

// WatchPermits subscribes to permit releases of key ([driver.PermitWatcher]),
// as WatchRelease does to lock releases: a ReleasePermit that deletes a
// live permit signals; an expiry does not. The channel holds a signal on
// return, so that a release just before the subscription is not missed
// (the waiter's next attempt comes at once).
func (d *Driver) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	w, stop, err := d.watch(ctx, key, true)
	if err != nil {
		return nil, nil, err
	}
	signal([]*watcher{w})
	return w.ch, stop, nil
}

func (d *Driver) watch(ctx context.Context, key string, permits bool) (*watcher, func(), error) {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1), key: k, permits: permits, active: true}
	sh := d.shardFor(k)
	sh.mu.Lock()
	m := sh.watchers(permits)
	m[k] = append(m[k], w)
	sh.mu.Unlock()

	unregister := context.AfterFunc(ctx, func() { sh.unwatch(w) })
	stop := func() {
		unregister()
		sh.unwatch(w)
	}
	return w, stop, nil
}

// unwatch removes w from sh; a no-op if it was already removed.
func (sh *shard) unwatch(w *watcher) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !w.active {
		return
	}
	w.active = false
	m := sh.watchers(w.permits)
	list := m[w.key]
	for i, x := range list {
		if x == w {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			list = list[:last]
			break
		}
	}
	if len(list) == 0 {
		delete(m, w.key)
	} else {
		m[w.key] = list
	}
}

// watchers returns the lock (permits false) or permit watchers of sh.
func (sh *shard) watchers(permits bool) map[string][]*watcher {
	if permits {
		return sh.pwatch
	}
	return sh.watch
}

// notify wakes the watchers of key without blocking. The caller holds
// sh.mu.
func (sh *shard) notify(key string) { signal(sh.watch[key]) }

// signal wakes ws without blocking.
func signal(ws []*watcher) {
	for _, w := range ws {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}
