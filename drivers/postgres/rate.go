package postgres

import (
	"context"

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
	g := driver.NewGCRA(lim, n)

	var tat, granted int64
	b := &pgx.Batch{}
	b.Queue(d.q.rateLock, dbText(k))
	b.Queue(d.q.allow, dbText(k), g.Increment, g.BurstOffset).QueryRow(func(row pgx.Row) error {
		return row.Scan(&tat, &granted)
	})
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return driver.RateResult{}, withKey(mapError(ctx, err), k)
	}
	res, _, _ := g.Result(tat, n)
	return res, nil
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
