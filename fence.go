package syncguard

import (
	"strconv"
)

// Fence is a fencing token: a per-key counter that strictly increases over
// every successful acquisition of the key. Pass it to the resource you
// protect and have that resource refuse a fence older than the newest it has
// seen; a stale lock holder then cannot corrupt data even after its lease
// expired behind its back. The zero Fence means "no fence".
//
// Its string form is exactly 15 decimal digits, zero-padded, so that string
// order equals numeric order.
type Fence uint64

// Fence limits.
const (
	// FenceDigits is the width of a formatted fence.
	FenceDigits = 15
	// FenceMax is the largest fence an acquisition may return; beyond it
	// Acquire fails with Internal and leaves no lock behind.
	FenceMax Fence = 900_000_000_000_000
	// FenceWarn is the threshold above which a new fence logs a warning.
	FenceWarn Fence = 90_000_000_000_000
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
		return "", invalidArg("Fence must be non-negative")
	}
	if n > fenceFormatMax {
		return "", invalidArg("Fence exceeds 15-digit limit")
	}
	return Fence(n).String(), nil
}

// ParseFence parses a 15-digit fence string (^\d{15}$). Anything else is
// InvalidArgument.
func ParseFence(s string) (Fence, error) {
	if len(s) != FenceDigits {
		return 0, invalidArg("Invalid fence format")
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, invalidArg("Invalid fence format")
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
		return 0, false, &LockError{Code: Internal, Message: "Fence counter is not positive"}
	}
	if Fence(next) > FenceMax {
		return 0, false, &LockError{Code: Internal, Message: "Fence counter overflow: exceeds " + FenceMax.String()}
	}
	return Fence(next), Fence(next) > FenceWarn, nil
}
