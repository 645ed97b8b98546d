package redis

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// PutRecord stores value under name with fence if no record exists or the
// stored fence is ≤ fence; otherwise it changes nothing and reports Stored
// false with the stored fence. Compare and write are one script. fence must
// be positive; ttl is 0 (no expiry) or a positive whole number of
// milliseconds, measured by the server (PX). Records live under their own
// "rec:" segment, apart from lock data.
func (d *Driver) PutRecord(ctx context.Context, name string, fence driver.Fence, value []byte, ttl time.Duration) (driver.PutResult, error) {
	n, ttlMs, err := driver.ValidatePutRecord(name, fence, ttl)
	if err != nil {
		return driver.PutResult{}, err
	}
	kn, err := d.checkedNames(ctx, n)
	if err != nil {
		return driver.PutResult{}, err
	}
	vals, err := d.exec(ctx, d.s.putRecord, []string{kn.rec()},
		[]string{formatInt(int64(fence)), string(value), formatInt(ttlMs)}).ToArray()
	if err != nil {
		return driver.PutResult{}, mapError(ctx, err, n, "")
	}
	ok, err1 := intAt(vals, 0)
	f, err2 := intAt(vals, 1)
	if err1 != nil || err2 != nil {
		return driver.PutResult{}, badReply("put-record")
	}
	return driver.PutResult{Stored: ok == 1, Fence: driver.Fence(f)}, nil
}

// GetRecord returns the record stored under name, or nil. It is one GET;
// Redis drops the record at its expiry.
func (d *Driver) GetRecord(ctx context.Context, name string) (*driver.Record, error) {
	n, kn, err := d.keyFor(ctx, name)
	if err != nil {
		return nil, err
	}
	v, ok, err := d.get(ctx, kn.rec(), n)
	if !ok || err != nil {
		return nil, err
	}
	f, rest, ok1 := strings.Cut(v, "|")
	e, val, ok2 := strings.Cut(rest, "|")
	fence, err1 := strconv.ParseInt(f, 10, 64)
	exp, err2 := strconv.ParseInt(e, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return nil, badReply("get-record")
	}
	return &driver.Record{Value: []byte(val), Fence: driver.Fence(fence), ExpiresAtMs: exp}, nil
}

// DeleteRecord deletes the record stored under name if its fence is ≤
// fence, reporting whether it deleted one. fence must be positive.
func (d *Driver) DeleteRecord(ctx context.Context, name string, fence driver.Fence) (bool, error) {
	n, err := driver.ValidateRecord(name, fence)
	if err != nil {
		return false, err
	}
	if _, err := driver.FormatFence(int64(fence)); err != nil {
		return false, err
	}
	kn, err := d.checkedNames(ctx, n)
	if err != nil {
		return false, err
	}
	r, err := d.exec(ctx, d.s.deleteRecord, []string{kn.rec()}, []string{formatInt(int64(fence))}).AsInt64()
	if err != nil {
		return false, mapError(ctx, err, n, "")
	}
	return r == 1, nil
}

// get reads the string stored under the storage name of key with one
// GET. ok is false when there is none; an error is mapped with key.
func (d *Driver) get(ctx context.Context, name, key string) (v string, ok bool, err error) {
	v, err = d.do(ctx, d.client.B().Get().Key(name).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, mapError(ctx, err, key, "")
	}
	return v, true, nil
}
