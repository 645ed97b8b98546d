package memory

import (
	"bytes"
	"context"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// recordEntry is a stored fenced record. Records live in their own map,
// separate from lock data.
type recordEntry struct {
	name        string // normalised name; immutable
	value       []byte // private copy
	fence       driver.Fence
	expiresAtMs int64 // 0: no expiry
	node        hnode // position in sh.recExp while expiresAtMs != 0
}

func (e *recordEntry) hn() *hnode { return &e.node }

func (e *recordEntry) live(nowMs int64) bool {
	return e.expiresAtMs == 0 || e.expiresAtMs > nowMs
}

// PutRecord stores a copy of value under name with fence if no live record
// exists or the stored fence is ≤ fence; otherwise it changes nothing and
// reports Stored false with the stored fence. fence must be positive; ttl is
// 0 (no expiry) or a positive whole number of milliseconds. A record expires
// at now + ttl, with no tolerance window.
func (d *Driver) PutRecord(ctx context.Context, name string, fence driver.Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	ttlMs, err := driver.RecordTTLMillis(ttl)
	if err != nil {
		return driver.PutResult{}, err
	}
	n, err := driver.CheckRecord(ctx, name, fence)
	if err != nil {
		return driver.PutResult{}, err
	}
	v := bytes.Clone(value) // copied outside the critical section

	sh, nowMs, nowNs := d.lockShard(n)
	e := sh.records[n]
	if e != nil && e.live(nowMs) && e.fence > fence {
		cur := e.fence
		sh.mu.Unlock()
		return driver.PutResult{Fence: cur}, nil
	}
	if e == nil {
		e = &recordEntry{name: n}
		sh.records[n] = e
	}
	e.value = v
	e.fence = fence
	if ttlMs == 0 {
		e.expiresAtMs = 0
		sh.recExp.remove(e)
	} else {
		e.expiresAtMs = nowMs + ttlMs
		sh.recExp.set(e, e.expiresAtMs)
	}
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	return driver.PutResult{Stored: true, Fence: fence}, nil
}

// GetRecord returns a copy of the live record stored under name, or nil.
func (d *Driver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	n, err := driver.CheckKey(ctx, name)
	if err != nil {
		return nil, err
	}
	sh, nowMs, _ := d.lockShard(n)
	e := sh.records[n]
	if e == nil || !e.live(nowMs) {
		sh.mu.Unlock()
		return nil, nil
	}
	// The stored slice is never modified in place, so it can be copied
	// after unlocking.
	v, f, exp := e.value, e.fence, e.expiresAtMs
	sh.mu.Unlock()
	return &driver.Record{Value: bytes.Clone(v), Fence: f, ExpiresAtMs: exp}, nil
}

// DeleteRecord deletes the live record stored under name if its fence is ≤
// fence, reporting whether it deleted one. fence must be positive.
func (d *Driver) DeleteRecord(ctx context.Context, name string, fence driver.Fence) (bool, error) {
	n, err := driver.CheckRecord(ctx, name, fence)
	if err != nil {
		return false, err
	}
	sh, nowMs, nowNs := d.lockShard(n)
	e := sh.records[n]
	deleted := false
	if e != nil && e.live(nowMs) && e.fence <= fence {
		sh.recExp.remove(e)
		delete(sh.records, n)
		deleted = true
	}
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	return deleted, nil
}
