package driver

import "time"

// GCRA is the arithmetic of the generic cell rate algorithm as
// go-redis/redis_rate computes it, in integer nanoseconds, for drivers that
// run it in Go: a request of n units against the theoretical arrival time
// (TAT) stored for a key.
type GCRA struct {
	// Interval is the emission interval, Period/Limit truncated to whole
	// nanoseconds.
	Interval int64
	// Increment is Interval × n, what a granted request adds to the TAT.
	Increment int64
	// BurstOffset is Interval × Burst.
	BurstOffset int64
}

// NewGCRA returns the arithmetic of a request of n units under lim, which
// must be valid ([ValidateRateLimit]).
func NewGCRA(lim RateLimit, n int) GCRA {
	ei := int64(lim.Period) / int64(lim.Limit)
	return GCRA{Interval: ei, Increment: ei * int64(n), BurstOffset: ei * int64(lim.Burst)}
}

// Result returns the outcome of the request of n units (n as given to
// [NewGCRA]) against tat, the stored TAT relative to now (0 when there is
// none or it has passed). When the request is granted, newTat is the TAT,
// relative to now, to store (when n > 0); a refused request stores nothing.
func (g GCRA) Result(tat int64, n int) (res RateResult, newTat int64, granted bool) {
	newTat = tat + g.Increment
	diff := g.BurstOffset - newTat // now − allowAt
	if diff < 0 {
		return RateResult{RetryAfter: time.Duration(-diff), ResetAfter: time.Duration(tat)}, newTat, false
	}
	return RateResult{Allowed: n, Remaining: int(diff / g.Interval), ResetAfter: time.Duration(newTat)}, newTat, true
}
