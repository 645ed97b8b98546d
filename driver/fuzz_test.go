package driver

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// coreRequireInvalid fails t unless err is a *LockError with code
// InvalidArgument.
func coreRequireInvalid(t *testing.T, err error) {
	t.Helper()
	var le *LockError
	if !errors.As(err, &le) || le.Code != InvalidArgument {
		t.Fatalf("err = %#v, want *LockError InvalidArgument", err)
	}
}

func FuzzNormalizeKey(f *testing.F) {
	for _, s := range []string{
		"", "a", "resource:123", coreCafeComposed, coreCafeDecomposed, "🔒", "\xff", "abc\xed\xa0\x80",
		strings.Repeat("a", 512), strings.Repeat("a", 513), strings.Repeat("🔒", 128),
		strings.Repeat("e\u0301", 256), strings.Repeat("\u0958", 170), strings.Repeat("\u0301", 40),
		"\u1100\u1161\u11a8", "\u212b", "\u1fbe\u0308\u0301",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := NormalizeKey(key)
		if err != nil {
			coreRequireInvalid(t, err)
			if got != "" {
				t.Fatalf("result %q with error", got)
			}
			// A valid, non-empty key may only be rejected for its NFC size.
			if key != "" && utf8.ValidString(key) {
				if n := len(norm.NFC.String(key)); n <= MaxKeyBytes {
					t.Fatalf("rejected (%v) although NFC form has %d bytes", err, n)
				}
			}
			return
		}
		if !utf8.ValidString(got) {
			t.Fatalf("result %+q is not valid UTF-8", got)
		}
		if !norm.NFC.IsNormalString(got) || got != norm.NFC.String(key) {
			t.Fatalf("result %+q is not the NFC form of %+q", got, key)
		}
		if len(got) < 1 || len(got) > MaxKeyBytes {
			t.Fatalf("result has %d bytes", len(got))
		}
		again, err := NormalizeKey(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %+q -> (%+q, %v)", got, again, err)
		}
	})
}

func FuzzStorageKey(f *testing.F) {
	f.Add("test", strings.Repeat("x", 500), 100, 0)
	f.Add("", strings.Repeat("x", 500), 30, 0)
	f.Add("test:::", "key", 100, 0)
	f.Add("test", strings.Repeat("x", 45), 50, 0)
	f.Add("test", strings.Repeat("x", 46), 50, 0)
	f.Add("syncguard", "resource:123", 1000, 26)
	f.Add("test", "key", 30, 26)
	f.Add(strings.Repeat("p", 30), strings.Repeat("x", 100), 40, 0)
	f.Add(":::", coreCafeDecomposed, 10, 0)
	f.Add("", "", 100, 0)
	f.Fuzz(func(t *testing.T, prefix, key string, limit, reserve int) {
		// Budgets are small backend constants; keep the arithmetic far from
		// integer overflow.
		if reserve < 0 || reserve > 1<<20 || limit < -(1<<20) || limit > 1<<20 {
			t.Skip()
		}
		got, err := StorageKey(prefix, key, limit, reserve)
		again, err2 := StorageKey(prefix, key, limit, reserve)
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: (%q, %v) then (%q, %v)", got, err, again, err2)
		}
		if err != nil {
			coreRequireInvalid(t, err)
			if got != "" {
				t.Fatalf("result %q with error", got)
			}
			return
		}
		if key == "" {
			t.Fatal("empty key accepted")
		}
		if len(got)+reserve > limit {
			t.Fatalf("len(%q)+%d > %d", got, reserve, limit)
		}
		p := strings.TrimRight(prefix, ":")
		cand := norm.NFC.String(key)
		if p != "" {
			if !strings.HasPrefix(got, p+":") {
				t.Fatalf("%q does not start with %q", got, p+":")
			}
			cand = p + ":" + cand
		}
		hashed := HashedKey(cand)
		if p != "" {
			hashed = p + ":" + hashed
		}
		if got != cand && got != hashed {
			t.Fatalf("result %q is neither the candidate nor its hash", got)
		}
		if got == hashed && got != cand && len(cand)+reserve <= limit {
			t.Fatalf("hashed %q although the candidate fits", got)
		}
	})
}

var fuzzLockIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func FuzzValidLockID(f *testing.F) {
	for _, s := range []string{
		"", "ABCDEFGHIJKLMNOPQRSTUV", "___---_-_-_-_-_-_-_-_-", "ABCDEFGHIJKLMNOPQRST==",
		"ABCDEFGHIJ+LMNOPQRSTUV", "\u0410BCDEFGHIJKLMNOPQRSTUV", "\u0410CDEFGHIJKLMNOPQRSTUV",
		"ABCDEFGHIJKLMNOPQRSTUV\n", strings.Repeat("a", 21), strings.Repeat("a", 23), NewLockID(),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := fuzzLockIDRE.MatchString(id)
		if got := ValidLockID(id); got != want {
			t.Fatalf("ValidLockID(%+q) = %v, regexp says %v", id, got, want)
		}
		err := ValidateLockID(id)
		if want {
			if err != nil {
				t.Fatalf("ValidateLockID(%q) = %v", id, err)
			}
			return
		}
		coreRequireInvalid(t, err)
		if err.Error() != "syncguard: invalid lockId format" {
			t.Fatalf("message %q", err.Error())
		}
	})
}

var fuzzFenceRE = regexp.MustCompile(`^\d{15}$`)

func FuzzParseFence(f *testing.F) {
	for _, s := range []string{
		"000000000000001", "000000000000000", "999999999999999", "900000000000000", "1",
		"0000000000000001", "abc000000000001", " 00000000000001", "+00000000000001", "0000000000000\u0661",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fence, err := ParseFence(s)
		want := fuzzFenceRE.MatchString(s)
		if (err == nil) != want {
			t.Fatalf("ParseFence(%+q) error %v, regexp says valid=%v", s, err, want)
		}
		if err != nil {
			coreRequireInvalid(t, err)
			return
		}
		if fence.String() != s {
			t.Fatalf("round trip %q -> %d -> %q", s, fence, fence.String())
		}
		formatted, err := FormatFence(int64(fence))
		if err != nil || formatted != s {
			t.Fatalf("FormatFence(%d) = (%q, %v), want %q", fence, formatted, err, s)
		}
	})
}

var fuzzHashKeyRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

func FuzzHashKey(f *testing.F) {
	for _, s := range []string{"", "resource:123", coreCafeComposed, coreCafeDecomposed, "🔒", "🔒锁鍵", "\xff", "\u212b", "\u1100\u1161\u11a8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h := HashKey(s)
		if !fuzzHashKeyRE.MatchString(h) {
			t.Fatalf("HashKey(%+q) = %q, want 24 lowercase hex", s, h)
		}
		if h != coreRefHashKey(s) {
			t.Fatalf("HashKey(%+q) = %s, reference %s", s, h, coreRefHashKey(s))
		}
		if !utf8.ValidString(s) {
			return
		}
		nfc := norm.NFC.String(s)
		if HashKey(nfc) != h {
			t.Fatalf("HashKey(%+q) != HashKey(NFC) ", s)
		}
		// Any canonically equivalent spelling with the same NFC form hashes
		// alike (stream-safe CGJ insertion can make NFC(NFD(s)) differ).
		if nfd := norm.NFD.String(s); norm.NFC.String(nfd) == nfc && HashKey(nfd) != h {
			t.Fatalf("HashKey(%+q) != HashKey(NFD)", s)
		}
	})
}

// FuzzValidateRateLimit: ValidateRateLimit never panics, rejects with
// InvalidArgument, and what it accepts is safe for a driver's GCRA
// arithmetic in int64 nanoseconds: positive fields, an emission interval
// of at least 1µs, and (Period/Limit) × n and × Burst within 2⁶¹ (checked
// here with big integers, so an overflow cannot hide).
func FuzzValidateRateLimit(f *testing.F) {
	f.Add(int64(10), int64(time.Second), int64(5), int64(1))
	f.Add(int64(1), int64(math.MaxInt64), int64(1), int64(0))
	f.Add(int64(1_000_000), int64(time.Second), int64(1<<30), int64(1<<30))
	f.Add(int64(1), int64(1<<31), int64(1<<30), int64(1<<30))
	f.Add(int64(-1), int64(-1), int64(-1), int64(-1))
	f.Fuzz(func(t *testing.T, limit, period, burst, n int64) {
		lim := RateLimit{Limit: int(limit), Period: time.Duration(period), Burst: int(burst)}
		err := ValidateRateLimit(lim, int(n))
		if err != nil {
			coreRequireInvalid(t, err)
			return
		}
		if lim.Limit <= 0 || lim.Period <= 0 || lim.Burst <= 0 || n < 0 {
			t.Fatalf("accepted %+v, n %d: a field is not positive", lim, n)
		}
		ei := int64(lim.Period) / int64(lim.Limit)
		if ei < int64(time.Microsecond) {
			t.Fatalf("accepted %+v: emission interval %dns under 1µs", lim, ei)
		}
		bound := new(big.Int).Lsh(big.NewInt(1), 61)
		for _, m := range []int64{n, int64(lim.Burst)} {
			if p := new(big.Int).Mul(big.NewInt(ei), big.NewInt(m)); p.Cmp(bound) > 0 {
				t.Fatalf("accepted %+v, n %d: %d × %d exceeds 2^61", lim, n, ei, m)
			}
		}
	})
}

// FuzzTTLMillis: TTLMillis and RecordTTLMillis never panic and reject with
// InvalidArgument; what TTLMillis accepts is a positive whole number of
// milliseconds of at most 100 years that converts back exactly, so that
// now + ttl stays exact in a double (Lua, JavaScript). RecordTTLMillis
// also accepts 0 (no expiry) and otherwise agrees with TTLMillis.
func FuzzTTLMillis(f *testing.F) {
	for _, d := range []time.Duration{1, time.Millisecond, 1500 * time.Microsecond, 0, -time.Millisecond,
		time.Duration(maxTTLMs) * time.Millisecond, time.Duration(maxTTLMs+1) * time.Millisecond, math.MaxInt64} {
		f.Add(int64(d))
	}
	f.Fuzz(func(t *testing.T, v int64) {
		ttl := time.Duration(v)
		ms, err := TTLMillis(ttl)
		if err != nil {
			coreRequireInvalid(t, err)
		} else {
			if ms <= 0 || ms > maxTTLMs || time.Duration(ms)*time.Millisecond != ttl {
				t.Fatalf("TTLMillis(%v) = %d", ttl, ms)
			}
			if now := int64(1) << 41; float64(now+ms) != float64(now)+float64(ms) { // a 2040s Unix ms clock
				t.Fatalf("TTLMillis(%v) = %d: now+ttl is not exact in a double", ttl, ms)
			}
		}
		rms, rerr := RecordTTLMillis(ttl)
		switch {
		case ttl == 0:
			if rerr != nil || rms != 0 {
				t.Fatalf("RecordTTLMillis(0) = %d, %v; want 0, nil", rms, rerr)
			}
		case (rerr == nil) != (err == nil) || rms != ms:
			t.Fatalf("RecordTTLMillis(%v) = %d, %v; TTLMillis = %d, %v", ttl, rms, rerr, ms, err)
		}
	})
}
