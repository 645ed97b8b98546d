package driver

import (
	"fmt"
	"time"
)

// Tolerance is the grace period during which a lock past its expiry is still
// treated as held, so that small clock differences never let two holders
// overlap. It is fixed by the contract and not configurable. Drivers pass it
// to server-side scripts as an argument instead of repeating the literal.
const Tolerance = 1000 * time.Millisecond

// ToleranceMs is [Tolerance] in milliseconds.
const ToleranceMs = int64(Tolerance / time.Millisecond)

// CleanupGuardMs is how long after its expiry lock data may be deleted by
// opportunistic cleanup.
const CleanupGuardMs = 2000

// DefaultTTL is the lock TTL used when none is given.
const DefaultTTL = 30 * time.Second

// IsLive is the single liveness predicate of every driver: a lock expiring
// at expiresAtMs is live at nowMs iff expiresAtMs > nowMs − Tolerance.
func IsLive(expiresAtMs, nowMs int64) bool {
	return expiresAtMs > nowMs-ToleranceMs
}

// TTLMillis validates ttl — a positive whole number of milliseconds — and
// returns it in milliseconds. Anything else is InvalidArgument ("ttlMs must
// be a positive integer").
func TTLMillis(ttl time.Duration) (int64, error) {
	if ttl <= 0 || ttl%time.Millisecond != 0 {
		// The contract's message first (shared with upstream), then
		// what it means for a time.Duration.
		return 0, invalidArg(fmt.Sprintf("ttlMs must be a positive integer: a TTL must be a positive whole number of milliseconds, got %v", ttl))
	}
	ms := int64(ttl / time.Millisecond)
	// Keep now+ttl well inside the 2^53 range shared with JavaScript
	// clients and Lua numbers: TTLs up to ~100 years.
	if ms > maxTTLMs {
		return 0, invalidArg(fmt.Sprintf("ttlMs exceeds maximum of 100 years: got %v", ttl))
	}
	return ms, nil
}

const maxTTLMs = 100 * 365 * 24 * 3600 * 1000

// UnixMs converts t to Unix milliseconds (floor).
func UnixMs(t time.Time) int64 { return t.UnixMilli() }

// ValidateRateLimit checks lim and n for AllowN: Limit, Period and Burst
// positive, Period/Limit at least a microsecond, 0 ≤ n ≤ 2³⁰, Burst ≤ 2³⁰,
// and (Period/Limit) × n and × Burst at most 2⁶¹ ns (about 73 years), so
// that a driver may compute them in int64 nanoseconds without overflow.
func ValidateRateLimit(lim RateLimit, n int) error {
	switch {
	case lim.Limit <= 0:
		return invalidArg(fmt.Sprintf("rate limit must be positive: RateLimit.Limit is %d", lim.Limit))
	case lim.Period <= 0:
		return invalidArg(fmt.Sprintf("rate period must be positive: RateLimit.Period is %v", lim.Period))
	case lim.Burst <= 0:
		return invalidArg(fmt.Sprintf("rate burst must be positive: RateLimit.Burst is %d", lim.Burst))
	case lim.Period/time.Duration(lim.Limit) < time.Microsecond:
		return invalidArg(fmt.Sprintf("rate emission interval (period/limit) must be at least 1µs: %v/%d is %v",
			lim.Period, lim.Limit, lim.Period/time.Duration(lim.Limit)))
	case n < 0:
		return invalidArg(fmt.Sprintf("rate cost n must not be negative, got %d", n))
	case n > 1<<30 || lim.Burst > 1<<30:
		return invalidArg("rate cost or burst too large")
	}
	if ei := int64(lim.Period) / int64(lim.Limit); int64(n) > maxRateSpan/ei || int64(lim.Burst) > maxRateSpan/ei {
		return invalidArg("rate period/limit × cost or burst exceeds the supported range")
	}
	return nil
}

// maxRateSpan bounds emission interval × n and × burst (about 73 years), so
// that a driver's GCRA arithmetic cannot overflow int64 nanoseconds (nor
// lose precision in a double of microseconds).
const maxRateSpan = int64(1) << 61

// RecordTTLMillis validates the TTL of a fenced record: 0 (no expiry) or a
// positive whole number of milliseconds.
func RecordTTLMillis(ttl time.Duration) (int64, error) {
	if ttl == 0 {
		return 0, nil
	}
	return TTLMillis(ttl)
}
