package memory

import (
	"context"

	"github.com/syncguard/syncguard/driver"
)

// watcher is one WatchRelease subscription.
type watcher struct {
	ch     chan struct{} // capacity 1; never closed
	key    string
	active bool // guarded by the shard's mu
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
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	w := &watcher{ch: make(chan struct{}, 1), key: k, active: true}
	sh := d.shardFor(k)
	sh.mu.Lock()
	sh.watch[k] = append(sh.watch[k], w)
	sh.mu.Unlock()

	unregister := context.AfterFunc(ctx, func() { sh.unwatch(w) })
	stop := func() {
		unregister()
		sh.unwatch(w)
	}
	return w.ch, stop, nil
}

// unwatch removes w from sh; a no-op if it was already removed.
func (sh *shard) unwatch(w *watcher) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !w.active {
		return
	}
	w.active = false
	list := sh.watch[w.key]
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
		delete(sh.watch, w.key)
	} else {
		sh.watch[w.key] = list
	}
}

// notify wakes the watchers of key without blocking. The caller holds
// sh.mu.
func (sh *shard) notify(key string) {
	if len(sh.watch) == 0 {
		return
	}
	for _, w := range sh.watch[key] {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}
