package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
)

func errZeroFence() error {
	return driver.NewError(driver.InvalidArgument, "record fence must be positive")
}

// maxRecordFence keeps fences within PostgreSQL's bigint.
const maxRecordFence = 1<<63 - 1

func checkRecordFence(f driver.Fence) error {
	if f == 0 {
		return errZeroFence()
	}
	if uint64(f) > maxRecordFence {
		return driver.NewError(driver.InvalidArgument, "record fence exceeds the supported range")
	}
	return nil
}

// PutRecord stores value under name with fence if no live record exists or
// the stored fence is ≤ fence, in one statement (compare and write under
// the row lock, server clock); otherwise it changes nothing and reports
// Stored false with the stored fence. ttl 0 means no expiry. Records live
// in their own table.
func (d *Driver) PutRecord(ctx context.Context, name string, fence driver.Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, err := driver.NormalizeKey(name)
	if err != nil {
		return driver.PutResult{}, err
	}
	if err := checkRecordFence(fence); err != nil {
		return driver.PutResult{}, err
	}
	ttlMs, err := driver.RecordTTLMillis(ttl)
	if err != nil {
		return driver.PutResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.PutResult{}, err
	}
	if value == nil {
		value = []byte{}
	}
	var stored, seen *int64
	if err := d.pool.QueryRow(ctx, d.q.putRecord, dbText(n), int64(fence), value, ttlMs).Scan(&stored, &seen); err != nil {
		return driver.PutResult{}, withKey(mapError(ctx, err), n)
	}
	if stored != nil {
		return driver.PutResult{Stored: true, Fence: fence}, nil
	}
	if seen == nil || *seen <= int64(fence) {
		// The conflicting row is newer than this statement's snapshot:
		// read it (a second round trip, only in this race).
		var cur int64
		err := d.pool.QueryRow(ctx, d.q.recordFence, dbText(n)).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return driver.PutResult{}, nil
		}
		if err != nil {
			return driver.PutResult{}, withKey(mapError(ctx, err), n)
		}
		seen = &cur
	}
	return driver.PutResult{Fence: driver.Fence(*seen)}, nil
}

// GetRecord returns the live record stored under name, or nil.
func (d *Driver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, err := driver.CheckKey(ctx, name)
	if err != nil {
		return nil, err
	}
	var (
		v   []byte
		f   int64
		exp *int64
	)
	err = d.pool.QueryRow(ctx, d.q.getRecord, dbText(n)).Scan(&v, &f, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, withKey(mapError(ctx, err), n)
	}
	rec := &driver.Record{Value: v, Fence: driver.Fence(f)}
	if exp != nil {
		rec.ExpiresAtMs = *exp
	}
	return rec, nil
}

// DeleteRecord deletes the live record stored under name if its fence is ≤
// fence, reporting whether it deleted one.
func (d *Driver) DeleteRecord(ctx context.Context, name string, fence driver.Fence) (bool, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	n, err := driver.NormalizeKey(name)
	if err != nil {
		return false, err
	}
	if err := checkRecordFence(fence); err != nil {
		return false, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return false, err
	}
	tag, err := d.pool.Exec(ctx, d.q.deleteRecord, dbText(n), int64(fence))
	if err != nil {
		return false, withKey(mapError(ctx, err), n)
	}
	return tag.RowsAffected() > 0, nil
}
