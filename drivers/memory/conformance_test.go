package memory

import (
	"context"
	"testing"
	"time"

	"github.com/syncguard/syncguard/conformance"
	"github.com/syncguard/syncguard/driver"
)

// harness runs the shared conformance suite against the memory driver. As
// an internal test it reaches the driver's state for the optional hooks.
//
// CleanupInIsLocked is fixed when a Driver is created, so DriverWithCleanup
// is a second Driver; case 041 FIX makes all its lock operations through it,
// and the storage inspection looks at both.
type harness struct {
	d, cleanup *Driver
}

var (
	_ conformance.Harness[Capabilities]        = (*harness)(nil)
	_ conformance.CleanupHarness[Capabilities] = (*harness)(nil)
	_ conformance.RawLockWriter                = (*harness)(nil)
	_ conformance.FenceSetter                  = (*harness)(nil)
	_ conformance.StorageInspector             = (*harness)(nil)
)

func (h *harness) Driver() driver.Driver[Capabilities]            { return h.d }
func (h *harness) DriverWithCleanup() driver.Driver[Capabilities] { return h.cleanup }
func (h *harness) Close()                                         {}

// WriteRawLock stores a lock of key with the given ID and fence expiring at
// clock-now + off, replacing any lock data of key.
func (h *harness) WriteRawLock(_ context.Context, key, lockID string, fence driver.Fence, off time.Duration) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	d := h.d
	sh := d.shardFor(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	nowMs, _ := d.now()
	ks := sh.keys[k]
	if ks == nil {
		ks = &keyState{key: k, sh: sh}
		sh.keys[k] = ks
	} else if ks.lockID != "" {
		d.dropLock(sh, ks)
	}
	exp := nowMs + off.Milliseconds()
	ks.fence = max(ks.fence, int64(fence))
	ks.lockID = lockID
	ks.ids = d.idShardFor(lockID)
	ks.expiresAtMs = exp
	ks.acquiredAtMs = nowMs
	sh.lockExp.set(ks, exp)
	ks.ids.index(lockID, ks)
	return nil
}

// SetFence presets key's fence counter.
func (h *harness) SetFence(_ context.Context, key string, value int64) error {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return err
	}
	sh := h.d.shardFor(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ks := sh.keys[k]
	if ks == nil {
		ks = &keyState{key: k, sh: sh}
		sh.keys[k] = ks
	}
	ks.fence = value
	return nil
}

func (h *harness) inspect(key string, q func(ks *keyState) bool) (bool, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return false, err
	}
	found := false
	for _, d := range []*Driver{h.d, h.cleanup} {
		sh := d.shardFor(k)
		sh.mu.Lock()
		if ks := sh.keys[k]; ks != nil && q(ks) {
			found = true
		}
		sh.mu.Unlock()
	}
	return found, nil
}

// LockDataExists reports whether lock data of key is stored, expired or not.
func (h *harness) LockDataExists(_ context.Context, key string) (bool, error) {
	return h.inspect(key, func(ks *keyState) bool { return ks.lockID != "" })
}

// FenceCounterExists reports whether key's fence counter is stored.
func (h *harness) FenceCounterExists(_ context.Context, key string) (bool, error) {
	return h.inspect(key, func(ks *keyState) bool { return ks.fence > 0 })
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(context.Context, *testing.T) (conformance.Harness[Capabilities], error) {
		return &harness{d: New(), cleanup: New(WithCleanupInIsLocked(true))}, nil
	}, conformance.Options{})
}
