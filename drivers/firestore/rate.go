package firestore

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
)

// AllowN accounts n units against key under lim with the generic cell rate
// algorithm (as go-redis/redis_rate), in one transaction on the client
// clock, in integer nanoseconds. A granted request with n > 0 stores the
// new theoretical arrival time (and an expiresAt for a Firestore TTL
// policy); a refused one, and n = 0, writes nothing.
func (d *Driver) AllowN(ctx context.Context, key string, lim driver.RateLimit, n int) (driver.RateResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, err := driver.ValidateRate(key, lim, n)
	if err != nil {
		return driver.RateResult{}, err
	}
	id, err := docID(k)
	if err != nil {
		return driver.RateResult{}, err
	}
	if err := driver.CheckContext(ctx); err != nil {
		return driver.RateResult{}, err
	}
	g := driver.NewGCRA(lim, n)
	ref := d.rates.Doc(id)
	unlock, err := d.stripes.lock(ctx, ref.Path)
	if err != nil {
		return driver.RateResult{}, err
	}
	defer unlock()
	var res driver.RateResult
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		res = driver.RateResult{}
		s, err := tx.Get(ref)
		if err != nil && !isNotFound(err) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		nowNs := d.now().UnixNano()
		var tat int64
		if s != nil && s.Exists() {
			if stored, ok := s.Data()["tat"].(int64); ok && stored > nowNs {
				tat = stored - nowNs
			}
		}
		var newTat int64
		var granted bool
		res, newTat, granted = g.Result(tat, n)
		if !granted || n == 0 {
			return nil
		}
		return tx.Set(ref, map[string]any{
			"tat":       nowNs + newTat,
			"expiresAt": time.Unix(0, nowNs+newTat),
		})
	})
	if err != nil {
		return driver.RateResult{}, mapError(ctx, err, k, "")
	}
	return res, nil
}

// ResetRate forgets the GCRA state of key.
func (d *Driver) ResetRate(ctx context.Context, key string) error {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, id, err := driver.CheckKeyAs(ctx, key, docID)
	if err != nil {
		return err
	}
	if _, err := d.rates.Doc(id).Delete(ctx); err != nil {
		return mapError(ctx, err, k, "")
	}
	return nil
}
