package firestore

import (
	"context"
	"sync"

	"cloud.google.com/go/firestore"
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
	first, holder := true, ""
	return d.watchDoc(ctx, k, d.locks.Doc(base), func(s *firestore.DocumentSnapshot) bool {
		l, ok := decodeLock(s)
		free := !ok || !driver.IsLive(l.expiresAtMs, d.nowMs())
		wake := free || (!first && l.lockID != holder)
		first, holder = false, l.lockID
		return wake
	})
}

// WatchPermits subscribes to permit releases of key
// ([driver.PermitWatcher]) through a snapshot listener on its permit
// document, as WatchRelease does on the lock document: the channel holds a
// signal on return (the waiter makes one more attempt), then receives a
// value whenever a permit it saw leaves the document (released, or pruned
// after expiry by another call).
func (d *Driver) WatchPermits(ctx context.Context, key string) (<-chan struct{}, func(), error) {
	k, ref, err := d.permitRef(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	var seen map[string]bool // nil before the first snapshot
	return d.watchDoc(ctx, k, ref, func(s *firestore.DocumentSnapshot) bool {
		pd, _ := decodePermits(s) // a malformed document wakes: its acquirers see the error
		wake := seen == nil
		cur := make(map[string]bool, len(pd.holders))
		for _, p := range pd.holders {
			cur[p.id] = true
		}
		for id := range seen {
			wake = wake || !cur[id]
		}
		seen = cur
		return wake
	})
}

// watchDoc runs a snapshot listener on ref for key k and signals the
// returned channel (capacity one; signals coalesce) whenever wake, called
// with each snapshot in order (the first is the document's state when the
// listener starts), reports true. It returns once the first snapshot has
// been seen; if the listener fails later, the channel is closed.
func (d *Driver) watchDoc(ctx context.Context, k string, ref *firestore.DocumentRef, wake func(*firestore.DocumentSnapshot) bool) (<-chan struct{}, func(), error) {
	if err := d.bgCtx.Err(); err != nil {
		return nil, nil, driver.NewError(driver.ServiceUnavailable, "firestore: driver closed")
	}
	wctx, cancel := context.WithCancel(d.bgCtx)
	it := ref.Snapshots(wctx)
	ch := make(chan struct{}, 1)
	ready := make(chan error, 1)
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		defer it.Stop()
		first := true
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
			if wake(s) {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			if first {
				first = false
				ready <- nil
			}
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
