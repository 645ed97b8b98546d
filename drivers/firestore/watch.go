package firestore

import (
	"context"
	"sync"

	"github.com/syncguard/syncguard/driver"
)

// WatchRelease subscribes to releases of key through a snapshot listener
// on its lock document. It returns once the listener has delivered the
// document's current state; if the key is already free then, the channel
// holds a signal at once. Afterwards the channel (capacity one) receives a
// value whenever the document is deleted or taken by another lock ID;
// signals coalesce and can be spurious. An expiry alone changes nothing in
// the document, so waiters keep their backoff fallback. If the listener
// fails, the channel is closed (fall back to plain backoff).
//
// Each watch holds one listen stream; stop ends it (idempotent).
func (d *Driver) WatchRelease(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k, base, err := driver.CheckKeyAs(ctx, key, docID)
	if err != nil {
		return nil, nil, err
	}
	if err := d.bgCtx.Err(); err != nil {
		return nil, nil, driver.NewError(driver.ServiceUnavailable, "firestore: driver closed")
	}
	wctx, cancel := context.WithCancel(d.bgCtx)
	it := d.locks.Doc(base).Snapshots(wctx)
	ch := make(chan struct{}, 1)
	ready := make(chan error, 1)
	signal := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer it.Stop()
		first := true
		holder := ""
		for {
			s, err := it.Next()
			if err != nil {
				if first {
					ready <- err
				}
				if wctx.Err() == nil { // the listener failed: tell the waiter
					close(ch)
				}
				return
			}
			l, ok := decodeLock(s)
			free := !ok || !driver.IsLive(l.expiresAtMs, d.nowMs())
			if first {
				first = false
				if free {
					signal()
				}
				holder = l.lockID
				ready <- nil
				continue
			}
			if free || l.lockID != holder {
				signal()
			}
			holder = l.lockID
		}
	}()
	var once sync.Once
	stop := func() { once.Do(cancel) }
	select {
	case err := <-ready:
		if err != nil {
			stop()
			return nil, nil, mapError(ctx, err, k, "")
		}
	case <-ctx.Done():
		stop()
		return nil, nil, driver.ContextError(ctx.Err())
	}
	return ch, stop, nil
}
