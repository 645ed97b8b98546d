package driver

import (
	"context"
	"log/slog"
	"strconv"
)

// Fence is a fencing token: a per-key number that strictly increases over
// every successful acquisition of the key. Pass it to the resource you
// protect and have that resource refuse a fence older than the newest it has
// seen; a stale lock holder then cannot corrupt data even after its lease
// expired behind its back. The zero Fence means "no fence".
//
// A new fence is max(the key's last fence + 1, the server time in units of
// 10 µs since 2025-01-01 UTC) (see [FenceFloor]): it keeps increasing when
// the key's counter is gone (expired, swept, lost in a restart without
// persistence or a failover), as long as the server clock has not gone
// back by more than the time since the key's last acquisition. So a fence
// looks like a timestamp (about 6·10¹² in 2027) and is not dense.
//
// Its string form is exactly 15 decimal digits, zero-padded, so that string
// order equals numeric order.
type Fence uint64

// Fence floor: the server clock in units of 10 µs since FenceEpochMs.
const (
	// FenceEpochMs is 2025-01-01T00:00:00Z in Unix milliseconds.
	FenceEpochMs = 1_735_689_600_000
	// FencePerMs is how much the floor grows per millisecond. At it, the
	// floor reaches FenceWarn in 2215 and FenceMax in 2310. A key acquired
	// more than FencePerMs times in one millisecond runs its counter ahead of
	// the floor; it stays correct (last + 1 wins), and its counter is kept
	// until the floor has caught up (see [FenceKeepMs]).
	FencePerMs = 100
	// FenceMarginMs is how far the floor must have passed a key's last
	// fence before its counter may be deleted: a clock that steps back, or a
	// failover to a server whose clock is behind, by less than this still
	// issues greater fences. It is five times the liveness tolerance
	// ([ToleranceMs]), the clock skew the TTLs already assume.
	FenceMarginMs = 5 * ToleranceMs
)

// FenceFloor returns the fence floor at the Unix time unixUs (µs): the
// number of 10 µs units since [FenceEpochMs], or 0 before it.
func FenceFloor(unixUs int64) Fence {
	d := unixUs - FenceEpochMs*1000
	if d <= 0 {
		return 0
	}
	return Fence(d / (1000 / FencePerMs))
}

// FenceKeepMs returns how long after unixUs the counter of a key whose
// last fence is f must be kept: until the floor has passed f by
// [FenceMarginMs]. It is at least FenceMarginMs (f at or below the floor)
// and grows with how far f runs ahead of the floor.
func FenceKeepMs(f Fence, unixUs int64) int64 {
	floor := FenceFloor(unixUs)
	ahead := int64(0)
	if f > floor {
		ahead = int64(f-floor+FencePerMs-1) / FencePerMs
	}
	return ahead + FenceMarginMs
}

// Fence limits.
const (
	// FenceDigits is the width of a formatted fence.
	FenceDigits = 15
	// FenceMax is the largest fence an acquisition may return; beyond it
	// Acquire fails with Internal and leaves no lock behind.
	FenceMax Fence = 900_000_000_000_000
	// FenceWarn is the threshold above which a new fence logs a warning
	// (the floor reaches it in 2215).
	FenceWarn Fence = 600_000_000_000_000
	// fenceFormatMax is the largest value with 15 digits.
	fenceFormatMax = 999_999_999_999_999
)

// String returns f as exactly 15 zero-padded digits. Values beyond 15 digits
// (which no driver returns) are printed in full.
func (f Fence) String() string {
	var buf [20]byte
	b := strconv.AppendUint(buf[:0], uint64(f), 10)
	if len(b) >= FenceDigits {
		return string(b)
	}
	var out [FenceDigits]byte
	pad := FenceDigits - len(b)
	for i := 0; i < pad; i++ {
		out[i] = '0'
	}
	copy(out[pad:], b)
	return string(out[:])
}

// FormatFence formats n as a 15-digit fence string. It fails with
// InvalidArgument for n < 0 ("non-negative") or n > 999 999 999 999 999
// ("exceeds 15-digit limit").
func FormatFence(n int64) (string, error) {
	if n < 0 {
		return "", invalidArg("fence must be non-negative")
	}
	if n > fenceFormatMax {
		return "", invalidArg("fence exceeds 15-digit limit")
	}
	return Fence(n).String(), nil
}

// ParseFence parses a 15-digit fence string (^\d{15}$). Anything else is
// InvalidArgument.
func ParseFence(s string) (Fence, error) {
	if len(s) != FenceDigits {
		return 0, invalidArg("invalid fence format")
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, invalidArg("invalid fence format")
		}
		n = n*10 + uint64(c-'0')
	}
	return Fence(n), nil
}

// CheckNewFence vets a freshly incremented fence counter value before a
// driver hands it out. It returns an Internal error if next exceeds
// [FenceMax] (the driver must then write no lock), and warn = true if next
// exceeds [FenceWarn] (the driver should log, with the key's hash, that the
// counter approaches its limit).
func CheckNewFence(next int64) (f Fence, warn bool, err error) {
	if next <= 0 {
		return 0, false, &LockError{Code: Internal, Message: "fence counter is not positive"}
	}
	if Fence(next) > FenceMax {
		return 0, false, &LockError{Code: Internal, Message: "fence counter overflow: exceeds " + FenceMax.String()}
	}
	return Fence(next), Fence(next) > FenceWarn, nil
}

// WarnFence logs, at Warn on l (slog.Default() when nil), that key's fence
// counter passed [FenceWarn] on backend, with the key's hash only. Drivers
// call it when [CheckNewFence] says so.
func WarnFence(ctx context.Context, l *slog.Logger, backend, key string, f Fence) {
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(ctx, slog.LevelWarn, "syncguard: fence counter approaching its limit",
		slog.String("backend", backend),
		slog.String("keyHash", HashKey(key)),
		slog.String("fence", f.String()),
		slog.String("fenceMax", FenceMax.String()),
	)
}
