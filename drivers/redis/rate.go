package redis

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// AllowN accounts n units against key under lim with the generic cell rate
// algorithm, as go-redis/redis_rate does, in one script on the server clock.
// The emission interval is Period/Limit, the burst offset the emission
// interval × Burst. A granted request with n > 0 stores the new theoretical
// arrival time (with a PX that drops it once the key is back at full
// burst); a refused one, and n = 0, writes nothing.
func (d *Driver) AllowN(ctx context.Context, key string, lim driver.RateLimit, n int) (driver.RateResult, error) {
	k, err := driver.ValidateRate(key, lim, n)
	if err != nil {
		return driver.RateResult{}, err
	}
	kn, err := d.checkedNames(ctx, k)
	if err != nil {
		return driver.RateResult{}, err
	}
	eiUs := strconv.FormatFloat(float64(driver.NewGCRA(lim, n).Interval)/1e3, 'f', 3, 64)
	vals, err := d.exec(ctx, d.s.rate, []string{kn.rate()},
		[]string{eiUs, strconv.Itoa(n), strconv.Itoa(lim.Burst)}).ToArray()
	if err != nil {
		return driver.RateResult{}, mapError(ctx, err, k, "")
	}
	if len(vals) != 4 {
		return driver.RateResult{}, badReply("rate")
	}
	allowed, err1 := vals[0].AsInt64()
	remaining, err2 := vals[1].AsInt64()
	retry, err3 := microsAt(vals[2].ToString())
	reset, err4 := microsAt(vals[3].ToString())
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return driver.RateResult{}, badReply("rate")
	}
	return driver.RateResult{
		Allowed:    int(allowed),
		Remaining:  int(remaining),
		RetryAfter: retry,
		ResetAfter: reset,
	}, nil
}

// microsAt parses a decimal count of microseconds into a Duration.
func microsAt(s string, err error) (time.Duration, error) {
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) {
		return 0, badReply("rate")
	}
	return time.Duration(math.Round(f * 1e3)), nil
}

// ResetRate forgets the GCRA state of key (one DEL).
func (d *Driver) ResetRate(ctx context.Context, key string) error {
	k, kn, err := d.keyFor(ctx, key)
	if err != nil {
		return err
	}
	if err := d.do(ctx, d.client.B().Del().Key(kn.rate()).Build()).Error(); err != nil {
		return mapError(ctx, err, k, "")
	}
	return nil
}
