package postgres

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// BenchmarkAcquireRelease measures an Acquire+Release pair on one key per
// goroutine, serially and in parallel, next to the baseline of a session
// advisory lock pair (pg_try_advisory_lock / pg_advisory_unlock) on one
// pooled connection, in the same run.
func BenchmarkAcquireRelease(b *testing.B) {
	db := newTestDB(b, func(c *pgxpool.Config) { c.MaxConns = 16 })
	d := newDriver(b, db.pool)
	quiet := newDriver(b, db.pool, WithWakeups(false))
	ctx := context.Background()
	var seq atomic.Int64

	pairWith := func(b *testing.B, d *Driver, key string) {
		r, err := d.Acquire(ctx, key, 30*time.Second)
		if err != nil || !r.Acquired {
			b.Fatalf("Acquire = %+v, %v", r, err)
		}
		rr, err := d.Release(ctx, "", r.LockID)
		if err != nil || !rr.OK {
			b.Fatalf("Release = %+v, %v", rr, err)
		}
	}
	pair := func(b *testing.B, key string) { pairWith(b, d, key) }
	b.Run("syncguard/serial", func(b *testing.B) {
		key := "bench:serial"
		for b.Loop() {
			pair(b, key)
		}
	})
	b.Run("syncguard/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			key := "bench:par:" + strconv.FormatInt(seq.Add(1), 10)
			for pb.Next() {
				pair(b, key)
			}
		})
	})
	b.Run("syncguard-watched/parallel", func(b *testing.B) {
		// Another key is watched, so every release sends a NOTIFY.
		_, stop, err := d.WatchRelease(ctx, "bench:watched")
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			key := "bench:w:" + strconv.FormatInt(seq.Add(1), 10)
			for pb.Next() {
				pair(b, key)
			}
		})
	})
	b.Run("syncguard-nonotify/serial", func(b *testing.B) {
		for b.Loop() {
			pairWith(b, quiet, "bench:quiet")
		}
	})
	b.Run("syncguard-nonotify/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			key := "bench:quiet:" + strconv.FormatInt(seq.Add(1), 10)
			for pb.Next() {
				pairWith(b, quiet, key)
			}
		})
	})
	advisory := func(b *testing.B, id int64) {
		conn, err := db.pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, id).Scan(&ok); err != nil || !ok {
			b.Fatalf("pg_try_advisory_lock = %v, %v", ok, err)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, id).Scan(&ok); err != nil || !ok {
			b.Fatalf("pg_advisory_unlock = %v, %v", ok, err)
		}
	}
	b.Run("advisory/serial", func(b *testing.B) {
		for b.Loop() {
			advisory(b, 42)
		}
	})
	b.Run("advisory/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			id := 1000 + seq.Add(1)
			for pb.Next() {
				advisory(b, id)
			}
		})
	})
}

// BenchmarkOps measures single operations.
func BenchmarkOps(b *testing.B) {
	db := newTestDB(b, nil)
	d := newDriver(b, db.pool)
	ctx := context.Background()
	r, err := d.Acquire(ctx, "bench:held", time.Hour)
	if err != nil || !r.Acquired {
		b.Fatal(r, err)
	}
	b.Run("Extend", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Extend(ctx, "", r.LockID, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("IsLocked", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.IsLocked(ctx, "bench:held"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AcquireContended", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Acquire(ctx, "bench:held", time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
}
