package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
)

// AllowN accounts n units against key under lim with the generic cell rate
// algorithm (as go-redis/redis_rate), computed on the server clock in one
// round trip: a pipelined batch of a transaction-scoped advisory lock on
// the key and one statement that reads the stored theoretical arrival time
// under its row lock and writes the new one if granted. n = 0 only
// inspects; a refused request writes nothing.
func (d *Driver) AllowN(ctx context.Context, key string, lim driver.RateLimit, n int) (driver.RateResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, err := driver.CheckRate(ctx, key, lim, n)
	if err != nil {
		return driver.RateResult{}, err
	}
	ei := int64(lim.Period) / int64(lim.Limit)
	increment := ei * int64(n)
	burstOffset := ei * int64(lim.Burst)

	var tat, granted int64
	b := &pgx.Batch{}
	b.Queue(d.q.rateLock, dbText(k))
	b.Queue(d.q.allow, dbText(k), increment, burstOffset).QueryRow(func(row pgx.Row) error {
		return row.Scan(&tat, &granted)
	})
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return driver.RateResult{}, withKey(mapError(ctx, err), k)
	}
	newTat := tat + increment
	diff := burstOffset - newTat // now − allowAt
	if diff < 0 {
		return driver.RateResult{
			RetryAfter: time.Duration(-diff),
			ResetAfter: time.Duration(tat),
		}, nil
	}
	return driver.RateResult{
		Allowed:    n,
		Remaining:  int(diff / ei),
		ResetAfter: time.Duration(newTat),
	}, nil
}

// ResetRate forgets the GCRA state of key.
func (d *Driver) ResetRate(ctx context.Context, key string) error {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return err
	}
	if _, err := d.pool.Exec(ctx, d.q.resetRate, dbText(k)); err != nil {
		return withKey(mapError(ctx, err), k)
	}
	return nil
}
