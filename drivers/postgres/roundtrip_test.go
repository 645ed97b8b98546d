package postgres

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/syncguard/syncguard/driver"
)

// countingConn counts request/response turns on the wire: a Write that
// follows a Read starts a new round trip.
type countingConn struct {
	net.Conn
	mu       sync.Mutex
	lastRead bool
	trips    *int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.lastRead {
		*c.trips++
		c.lastRead = false
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if n > 0 {
		c.lastRead = true
	}
	c.mu.Unlock()
	return n, err
}

// TestOneRoundTripPerOperation counts wire round trips of every operation,
// in pgx's default mode (after the statements are cached on the
// connection) and in the PgBouncer-compatible modes Exec and
// SimpleProtocol (always), and checks the results in each mode.
func TestOneRoundTripPerOperation(t *testing.T) {
	t.Parallel()
	db := newTestDB(t, nil)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			var (
				mu    sync.Mutex
				trips int64
			)
			pool := db.newPool(t, func(c *pgxpool.Config) {
				c.MaxConns = 1
				c.ConnConfig.DefaultQueryExecMode = mode
				dialer := &net.Dialer{}
				c.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := dialer.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return &countingConn{Conn: conn, trips: &trips}, nil
				}
			})
			d := newDriver(t, pool)
			ctx := context.Background()
			// Warm-up: every statement once, so that the caching mode
			// has prepared them on the connection.
			{
				w := "rt-warm:" + mode.String()
				r, err := d.Acquire(ctx, w, time.Minute)
				if err != nil || !r.Acquired {
					t.Fatalf("warm-up Acquire = %+v, %v", r, err)
				}
				_, _ = d.Extend(ctx, "", r.LockID, time.Minute)
				_, _ = d.IsLocked(ctx, w)
				_, _ = d.LookupByKey(ctx, w)
				_, _ = d.LookupByID(ctx, r.LockID)
				_, _ = d.Release(ctx, "", r.LockID)
				_, _ = d.PutRecord(ctx, w, 1, nil, 0)
				_, _ = d.GetRecord(ctx, w)
				_, _ = d.DeleteRecord(ctx, w, 1)
				_, _ = d.AllowN(ctx, w, driver.RateLimit{Limit: 1, Period: time.Second, Burst: 1}, 1)
				_ = d.ResetRate(ctx, w)
				if p, err := d.AcquirePermit(ctx, w, 1, time.Minute); err == nil && p.Acquired {
					_, _ = d.ExtendPermit(ctx, w, p.LockID, time.Minute)
					_, _ = d.Permits(ctx, w)
					_, _ = d.ReleasePermit(ctx, w, p.LockID)
				}
			}
			measure := func(name string, fn func() error) {
				t.Helper()
				mu.Lock()
				before := trips
				mu.Unlock()
				if err := fn(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				mu.Lock()
				n := trips - before
				mu.Unlock()
				if n != 1 {
					t.Errorf("%s: %d round trips; want 1", name, n)
				}
			}
			key := "rt:" + mode.String()
			var held driver.AcquireResult
			check := func(cond bool, format string, args ...any) error {
				if !cond {
					t.Errorf(format, args...)
				}
				return nil
			}
			_ = pool.Ping(ctx)
			measure("Acquire", func() error {
				r, err := d.Acquire(ctx, key, time.Minute)
				if err == nil && r.Acquired {
					held = r
				}
				return err
			})
			if !held.Acquired {
				t.Fatalf("first Acquire did not acquire")
			}
			measure("Acquire (contended)", func() error {
				r, err := d.Acquire(ctx, key, time.Minute)
				if err != nil {
					return err
				}
				return check(!r.Acquired && r.Reason == driver.ReasonLocked, "contended Acquire = %+v", r)
			})
			measure("Extend", func() error {
				r, err := d.Extend(ctx, "", held.LockID, time.Minute)
				if err != nil {
					return err
				}
				return check(r.OK, "Extend = %+v", r)
			})
			measure("IsLocked", func() error {
				v, err := d.IsLocked(ctx, key)
				if err != nil {
					return err
				}
				return check(v, "IsLocked = false")
			})
			measure("LookupByKey", func() error {
				info, err := d.LookupByKey(ctx, key)
				if err != nil {
					return err
				}
				return check(info != nil && info.Fence == held.Fence, "LookupByKey = %+v", info)
			})
			measure("LookupByID", func() error {
				info, err := d.LookupByID(ctx, held.LockID)
				if err != nil {
					return err
				}
				return check(info != nil && driver.HashKey(info.LockID) == driver.HashKey(held.LockID), "LookupByID = %+v", info)
			})
			measure("Release", func() error {
				r, err := d.Release(ctx, "", held.LockID)
				if err != nil {
					return err
				}
				return check(r.OK, "Release = %+v", r)
			})
			measure("Release (not found)", func() error {
				r, err := d.Release(ctx, "", held.LockID)
				if err != nil {
					return err
				}
				return check(!r.OK && r.Detail == driver.DetailNotFound, "second Release = %+v", r)
			})
			measure("Acquire (after release)", func() error {
				r, err := d.Acquire(ctx, key, time.Minute)
				if err == nil {
					err = check(r.Acquired, "Acquire of a free key = %+v", r)
				}
				held = r
				return err
			})
			measure("PutRecord", func() error {
				r, err := d.PutRecord(ctx, key, 5, []byte("value"), time.Minute)
				if err != nil {
					return err
				}
				return check(r.Stored, "PutRecord = %+v", r)
			})
			measure("PutRecord (stale)", func() error {
				r, err := d.PutRecord(ctx, key, 4, []byte("old"), 0)
				if err != nil {
					return err
				}
				return check(!r.Stored && r.Fence == 5, "stale PutRecord = %+v", r)
			})
			measure("GetRecord", func() error {
				r, err := d.GetRecord(ctx, key)
				if err != nil {
					return err
				}
				return check(r != nil && string(r.Value) == "value" && r.Fence == 5, "GetRecord = %+v", r)
			})
			measure("DeleteRecord", func() error {
				_, err := d.DeleteRecord(ctx, key, 5)
				return err
			})
			lim := driver.RateLimit{Limit: 1000, Period: time.Second, Burst: 100}
			measure("AllowN", func() error {
				r, err := d.AllowN(ctx, key, lim, 1)
				if err != nil {
					return err
				}
				return check(r.Allowed == 1, "AllowN = %+v", r)
			})
			measure("ResetRate", func() error { return d.ResetRate(ctx, key) })
			var permit driver.AcquireResult
			measure("AcquirePermit", func() error {
				r, err := d.AcquirePermit(ctx, key, 1, time.Minute)
				permit = r
				if err != nil {
					return err
				}
				return check(r.Acquired && r.Fence > 0, "AcquirePermit = %+v", r)
			})
			measure("AcquirePermit (full)", func() error {
				r, err := d.AcquirePermit(ctx, key, 1, time.Minute)
				if err != nil {
					return err
				}
				return check(!r.Acquired && r.Reason == driver.ReasonLocked, "AcquirePermit of a full key = %+v", r)
			})
			measure("ExtendPermit", func() error {
				r, err := d.ExtendPermit(ctx, key, permit.LockID, time.Minute)
				if err != nil {
					return err
				}
				return check(r.OK, "ExtendPermit = %+v", r)
			})
			measure("Permits", func() error {
				p, err := d.Permits(ctx, key)
				if err != nil {
					return err
				}
				return check(len(p) == 1 && p[0].Fence == permit.Fence, "Permits = %+v", p)
			})
			measure("ReleasePermit", func() error {
				r, err := d.ReleasePermit(ctx, key, permit.LockID)
				if err != nil {
					return err
				}
				return check(r.OK, "ReleasePermit = %+v", r)
			})
			measure("ReleasePermit (not found)", func() error {
				r, err := d.ReleasePermit(ctx, key, permit.LockID)
				if err != nil {
					return err
				}
				return check(!r.OK && r.Detail == driver.DetailNotFound, "second ReleasePermit = %+v", r)
			})
			rr, err := d.Release(ctx, "", held.LockID)
			if err != nil || !rr.OK {
				t.Errorf("final Release = %+v, %v", rr, err)
			}
		})
	}
}
