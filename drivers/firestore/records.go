package firestore

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
)

// record is a decoded fenced-record document {fence, value, expiresAtMs}.
type record struct {
	fence driver.Fence
	value []byte
	exp   int64 // 0: none
}

func decodeRecord(s *firestore.DocumentSnapshot) (record, bool) {
	if s == nil || !s.Exists() {
		return record{}, false
	}
	m := s.Data()
	f, ok1 := m["fence"].(int64)
	v, _ := m["value"].([]byte)
	exp, ok2 := m["expiresAtMs"].(int64)
	if !ok1 || !ok2 || f < 1 {
		return record{}, false
	}
	return record{fence: driver.Fence(f), value: v, exp: exp}, true
}

func (r record) live(now int64) bool { return r.exp == 0 || r.exp > now }

// PutRecord stores value under name with fence if no live record exists or
// the stored fence is ≤ fence, in one transaction; otherwise it changes
// nothing and reports Stored false with the stored fence. ttl is 0 (no
// expiry) or a positive whole number of milliseconds on the client clock.
// Firestore limits a document to 1 MiB, which bounds value.
func (d *Driver) PutRecord(ctx context.Context, name string, fence driver.Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, ttlMs, err := driver.ValidatePutRecord(name, fence, ttl)
	if err != nil {
		return driver.PutResult{}, err
	}
	id, err := docID(n)
	if err != nil {
		return driver.PutResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.PutResult{}, err
	}
	if value == nil {
		value = []byte{}
	}
	ref := d.records.Doc(id)
	unlock, err := d.stripes.lock(ctx, ref.Path)
	if err != nil {
		return driver.PutResult{}, err
	}
	defer unlock()
	var res driver.PutResult
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		res = driver.PutResult{}
		s, err := tx.Get(ref)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := d.nowMs()
		if r, ok := decodeRecord(s); ok && r.live(now) && r.fence > fence {
			res.Fence = r.fence
			return nil
		}
		var exp int64
		if ttlMs > 0 {
			exp = now + ttlMs
		}
		if err := tx.Set(ref, map[string]any{"fence": int64(fence), "value": value, "expiresAtMs": exp}); err != nil {
			return err
		}
		res = driver.PutResult{Stored: true, Fence: fence}
		return nil
	})
	if err != nil {
		return driver.PutResult{}, mapError(ctx, err, n, "")
	}
	return res, nil
}

// GetRecord returns the live record stored under name, or nil (one read).
func (d *Driver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, id, err := driver.CheckKeyAs(ctx, name, docID)
	if err != nil {
		return nil, err
	}
	s, err := getDoc(ctx, d.records.Doc(id))
	if err != nil {
		return nil, mapError(ctx, err, n, "")
	}
	r, ok := decodeRecord(s)
	if !ok || !r.live(d.nowMs()) {
		return nil, nil
	}
	return &driver.Record{Value: r.value, Fence: r.fence, ExpiresAtMs: r.exp}, nil
}

// DeleteRecord deletes the live record stored under name if its fence is ≤
// fence, in one transaction, reporting whether it deleted one.
func (d *Driver) DeleteRecord(ctx context.Context, name string, fence driver.Fence) (bool, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, err := driver.ValidateRecord(name, fence)
	if err != nil {
		return false, err
	}
	id, err := docID(n)
	if err != nil {
		return false, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return false, err
	}
	ref := d.records.Doc(id)
	unlock, err := d.stripes.lock(ctx, ref.Path)
	if err != nil {
		return false, err
	}
	defer unlock()
	var deleted bool
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		deleted = false
		s, err := tx.Get(ref)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, ok := decodeRecord(s)
		if !ok || !r.live(d.nowMs()) || r.fence > fence {
			return nil
		}
		deleted = true
		return tx.Delete(ref)
	})
	if err != nil {
		return false, mapError(ctx, err, n, "")
	}
	return deleted, nil
}
