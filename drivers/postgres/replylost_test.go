package postgres

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/faultproxy"
)

// TestAcquireReplyLost: an acquisition that the server executed and whose
// reply was lost (the connection reset as the reply came back) has an
// unknown outcome in every query exec mode. The error does not claim that
// the request was never sent (pgconn.SafeToRetry is false), and the driver
// releases the minted ID in the background
// (docs/contract.md#contexts-and-unknown-outcomes), so that once Close has
// waited for that, no lock or permit is left.
//
// In QueryExecModeExec and QueryExecModeSimpleProtocol (the modes for
// PgBouncer) pgx v5.12 reports this lost reply of a batch as "conn closed",
// the error it uses for a connection found closed before anything was
// sent, which says SafeToRetry: see safeToRetry.
func TestAcquireReplyLost(t *testing.T) {
	t.Parallel()
	ops := []struct {
		name    string
		acquire func(ctx context.Context, d *Driver, key string) error
		held    func(ctx context.Context, d *Driver, key string) (bool, error)
	}{
		{"Acquire", func(ctx context.Context, d *Driver, key string) error {
			_, err := d.Acquire(ctx, key, time.Minute)
			return err
		}, func(ctx context.Context, d *Driver, key string) (bool, error) {
			return d.IsLocked(ctx, key)
		}},
		{"AcquirePermit", func(ctx context.Context, d *Driver, key string) error {
			_, err := d.AcquirePermit(ctx, key, 2, time.Minute)
			return err
		}, func(ctx context.Context, d *Driver, key string) (bool, error) {
			p, err := d.Permits(ctx, key)
			return len(p) > 0, err
		}},
	}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for _, op := range ops {
		for _, mode := range modes {
			t.Run(op.name+"/"+mode.String(), func(t *testing.T) {
				t.Parallel()
				db := newTestDB(t, nil)
				p, err := faultproxy.Start(net.JoinHostPort(db.cfg.ConnConfig.Host, strconv.Itoa(int(db.cfg.ConnConfig.Port))))
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				host, port, _ := net.SplitHostPort(p.Addr())
				pn, _ := strconv.Atoi(port)
				pool := db.newPool(t, func(c *pgxpool.Config) {
					c.ConnConfig.Host, c.ConnConfig.Port = host, uint16(pn)
					c.ConnConfig.Fallbacks = nil
					c.ConnConfig.DefaultQueryExecMode = mode
				})
				lossy := newDriver(t, pool)
				direct := newDriver(t, db.pool)
				ctx := t.Context()
				// A connection (and in the statement-cache mode, its
				// prepared statements) first, so that the next reply is
				// the one of the acquisition's execution.
				if err := op.acquire(ctx, lossy, "warm"); err != nil {
					t.Fatal(err)
				}
				p.ResetNext()
				err = op.acquire(ctx, lossy, "lost")
				if err == nil {
					t.Fatalf("%s with its reply lost: no error", op.name)
				}
				if pgconn.SafeToRetry(err) {
					t.Errorf("%s with its reply lost: %v: pgconn.SafeToRetry = true; want false (the request may have run)", op.name, err)
				}
				if code := driver.CodeOf(err); code != driver.ServiceUnavailable {
					t.Errorf("%s with its reply lost: %v (code %v); want ServiceUnavailable", op.name, err, code)
				}
				lossy.Close() // waits for the background release
				// It ran: its fence counter exists, beside the warm-up's.
				var n int
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM syncguard_fence_counters`).Scan(&n); err != nil || n != 2 {
					t.Errorf("fence counters = %d, %v; want 2 (the acquisition ran, then was released)", n, err)
				}
				held, err := op.held(ctx, direct, "lost")
				if err != nil {
					t.Fatal(err)
				}
				if held {
					t.Errorf("after %s with its reply lost and Close: still held; want released", op.name)
				}
			})
		}
	}
}
