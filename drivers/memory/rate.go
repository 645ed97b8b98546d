package memory

import (
	"context"

	"github.com/syncguard/syncguard/driver"
)

// rateEntry is the GCRA state of one key: its theoretical arrival time.
type rateEntry struct {
	key  string // normalised key; immutable
	tat  int64  // Unix nanoseconds
	node hnode  // position in sh.rateExp
}

func (e *rateEntry) hn() *hnode { return &e.node }

// AllowN accounts n units against key under lim with the generic cell rate
// algorithm, exactly as go-redis/redis_rate does, in integer nanoseconds:
// the emission interval is Period/Limit (truncated to whole nanoseconds),
// the burst offset is the emission interval × Burst. A granted request
// stores the new theoretical arrival time; a refused one, and any request
// with n = 0, writes nothing. RetryAfter is 0 when the request was granted.
func (d *Driver) AllowN(ctx context.Context, key string, lim driver.RateLimit, n int) (driver.RateResult, error) {
	k, err := driver.CheckRate(ctx, key, lim, n)
	if err != nil {
		return driver.RateResult{}, err
	}
	g := driver.NewGCRA(lim, n)

	sh, nowMs, nowNs := d.lockShard(k)
	e := sh.rates[k]
	// All times relative to now: tat = max(stored tat, now) − now ≥ 0.
	var tat int64
	if e != nil && e.tat > nowNs {
		tat = e.tat - nowNs
	}
	res, newTat, granted := g.Result(tat, n)
	if granted && n > 0 {
		if e == nil {
			e = &rateEntry{key: k}
			sh.rates[k] = e
		}
		e.tat = nowNs + newTat
		sh.rateExp.set(e, e.tat)
	}
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	return res, nil
}

// ResetRate forgets the GCRA state of key.
func (d *Driver) ResetRate(ctx context.Context, key string) error {
	k, err := driver.CheckKey(ctx, key)
	if err != nil {
		return err
	}
	sh := d.shardFor(k)
	sh.mu.Lock()
	if e := sh.rates[k]; e != nil {
		sh.rateExp.remove(e)
		delete(sh.rates, k)
	}
	nowMs, nowNs := d.now()
	d.sweep(sh, nowMs, nowNs)
	sh.mu.Unlock()
	return nil
}
