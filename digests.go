package syncguard

import (
	"context"

	"github.com/syncguard/syncguard/driver"
)

// NeedsDigests reports whether any of the observers needs digests; a plain
// Observer always does.
func (m multiObserver) NeedsDigests(ctx context.Context) bool {
	for _, o := range m {
		if needsDigests(o, ctx) {
			return true
		}
	}
	return false
}

// digestChooser is an OperationObserver with the optional NeedsDigests
// method (see [OperationObserver]).
type digestChooser interface {
	NeedsDigests(ctx context.Context) bool
}

// needsDigests reports whether o takes the digests of the events of ctx's
// call: always, unless o is an OperationObserver with NeedsDigests saying
// no; a panic means yes.
func needsDigests(o Observer, ctx context.Context) (yes bool) {
	if _, op := o.(OperationObserver); !op {
		return true
	}
	oo, ok := o.(digestChooser)
	if !ok {
		return true
	}
	defer func() {
		if recover() != nil {
			yes = true
		}
	}()
	return oo.NeedsDigests(ctx)
}

// digests holds the digests of an operation's key and lock ID, computed
// once for all of its events; immutable once in a context.
type digests struct {
	key, keyHash   string
	lockID, idHash string
}

type digestsKey struct{}

// withDigests returns ctx carrying d for the operation's events.
func withDigests(ctx context.Context, d *digests) context.Context {
	return context.WithValue(ctx, digestsKey{}, d)
}

// eventDigests returns the digests of key and lockID (either may be "")
// for an event of ctx's call reported to o: none if o does not need them,
// the operation's if ctx carries them.
func eventDigests(o Observer, ctx context.Context, key, lockID string) (keyHash, idHash string) {
	if (key == "" && lockID == "") || !needsDigests(o, ctx) {
		return "", ""
	}
	d, _ := ctx.Value(digestsKey{}).(*digests)
	if key != "" {
		if d != nil && d.key == key && d.keyHash != "" {
			keyHash = d.keyHash
		} else {
			keyHash = driver.HashKey(key)
		}
	}
	if lockID != "" {
		if d != nil && d.lockID == lockID && d.idHash != "" {
			idHash = d.idHash
		} else {
			idHash = driver.HashKey(lockID)
		}
	}
	return keyHash, idHash
}

// withOpDigests returns the context of an operation on key (and lockID,
// if not "") whose events all need their digests: computed once, here. It
// adds nothing without an OperationObserver (no operation events).
func (g *Guard[C]) withOpDigests(ctx context.Context, key, lockID string) context.Context {
	if !g.opObserving() || !needsDigests(g.cfg.observer, ctx) {
		return ctx
	}
	d := &digests{key: key, keyHash: driver.HashKey(key), lockID: lockID}
	if lockID != "" {
		d.idHash = driver.HashKey(lockID)
	}
	return withDigests(ctx, d)
}
