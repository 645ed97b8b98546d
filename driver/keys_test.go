package driver

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/unicode/norm"
)

const (
	coreCafeComposed   = "caf\u00e9"  // é as one code point
	coreCafeDecomposed = "cafe\u0301" // e + combining acute
)

var (
	coreHashKeyRE      = regexp.MustCompile(`^[0-9a-f]{24}$`)
	coreBase64urlRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	coreHashedSuffixRE = regexp.MustCompile(`:[A-Za-z0-9_-]{22}$`)
)

func TestNormalizeKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want string // "" means an InvalidArgument error is expected
		msg  string // substring of the error message
	}{
		{name: "case65/composed", key: coreCafeComposed, want: coreCafeComposed},
		{name: "case65/decomposed", key: coreCafeDecomposed, want: coreCafeComposed},
		{name: "case65/ascii_unchanged", key: "resource:payment:12345", want: "resource:payment:12345"},
		{name: "case65/ascii_specials_unchanged", key: "key/with/slashes.and-dashes_and:colons", want: "key/with/slashes.and-dashes_and:colons"},
		{name: "case65/angstrom_singleton", key: "\u212b", want: "\u00c5"},
		{name: "case73/unicode", key: "ключ-キー-🔒", want: "ключ-キー-🔒"},
		{name: "case62/empty", key: "", msg: "key must not be empty"},
		{name: "case63/600x", key: strings.Repeat("x", 600), msg: "exceeds maximum length"},
		{name: "case64/512a_ok", key: strings.Repeat("a", 512), want: strings.Repeat("a", 512)},
		{name: "case64/128_padlocks_512_bytes_ok", key: strings.Repeat("🔒", 128), want: strings.Repeat("🔒", 128)},
		{name: "case64/513x", key: strings.Repeat("x", 513), msg: "exceeds maximum length"},
		{name: "case64/129_padlocks", key: strings.Repeat("🔒", 129), msg: "exceeds maximum length"},
		{name: "case64/huge", key: strings.Repeat("x", 1<<20), msg: "exceeds maximum length"},
		// The size limit applies after NFC: decomposed input longer than 512
		// bytes is fine when its NFC form fits ...
		{name: "case64/measured_after_nfc_shrinking", key: strings.Repeat("e\u0301", 256), want: strings.Repeat("\u00e9", 256)},
		// ... Hangul L+V+T jamo (9 bytes) compose to one 3-byte syllable ...
		{name: "case64/measured_after_nfc_hangul", key: strings.Repeat("\u1100\u1161\u11a8", 170), want: strings.Repeat("\uac01", 170)},
		// ... and U+1FBE U+0308 U+0301 (7 bytes) composes to U+0390 (2 bytes):
		// 1792 input bytes, exactly 512 after NFC, so the key is valid.
		{name: "case64/measured_after_nfc_3.5x", key: strings.Repeat("\u1fbe\u0308\u0301", 256), want: strings.Repeat("\u0390", 256)},
		// NFC may also grow a key: U+0958 is a composition exclusion and
		// becomes U+0915 U+093C (3 -> 6 bytes). 510 input bytes, 1020 after NFC.
		{name: "case64/measured_after_nfc_growing", key: strings.Repeat("\u0958", 170), msg: "exceeds maximum length"},
		{name: "case65/invalid_utf8", key: "abc\xff", msg: "UTF-8"},
		{name: "case65/invalid_utf8_surrogate", key: "\xed\xa0\x80", msg: "UTF-8"},
		{name: "case65/invalid_utf8_truncated", key: "🔒"[:3], msg: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizeKey(tt.key)
			if tt.want == "" {
				coreRequireCode(t, err, InvalidArgument, tt.msg)
				if got != "" {
					t.Errorf("NormalizeKey returned %q with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeKey(%d bytes) error: %v", len(tt.key), err)
			}
			if got != tt.want {
				t.Errorf("NormalizeKey = %+q, want %+q", got, tt.want)
			}
		})
	}
	t.Run("case65/composed_equals_decomposed", func(t *testing.T) {
		t.Parallel()
		a, errA := NormalizeKey(coreCafeComposed)
		b, errB := NormalizeKey(coreCafeDecomposed)
		if errA != nil || errB != nil {
			t.Fatalf("errors: %v, %v", errA, errB)
		}
		if a != b || a != norm.NFC.String(coreCafeDecomposed) {
			t.Errorf("NormalizeKey: composed %+q, decomposed %+q", a, b)
		}
	})
}

func TestStorageKey(t *testing.T) {
	t.Parallel()
	x := func(n int) string { return strings.Repeat("x", n) }
	// hashed mirrors step 3 of StorageKey (docs/contract.md#keys) independently of HashedKey.
	hashed := func(cand string) string {
		sum := sha256.Sum256([]byte(cand))
		return base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	tests := []struct {
		name           string
		prefix, key    string
		limit, reserve int
		want           string
	}{
		{"case78/vector_test_500x", "test", x(500), 100, 0, "test:almAngpz1zHVEeEfkwDrhg"},
		{"case78/vector_empty_prefix_500x", "", x(500), 30, 0, "w4wr8wVcUWqYrF2X8w58Ng"},
		{"case78/vector_trailing_colons", "test:::", "key", 100, 0, "test:key"},
		{"case78/short_key_kept", "test", "resource:payment:12345", 1000, 25, "test:resource:payment:12345"},
		{"case78/empty_prefix_no_colon", "", "resource:payment:12345", 1500, 0, "resource:payment:12345"},
		{"case78/one_trailing_colon", "test:", "key", 100, 0, "test:key"},
		{"case78/only_colons_prefix", ":::", "key", 100, 0, "key"},
		{"case78/45x_exact_limit_kept", "test", x(45), 50, 0, "test:" + x(45)},
		{"case78/46x_one_over_hashed", "test", x(46), 50, 0, "test:" + hashed("test:"+x(46))},
		{"case78/reserve_counts", "test", x(45), 50, 1, "test:" + hashed("test:"+x(45))},
		{"case78/20_padlocks_80_bytes_hashed", "", strings.Repeat("🔒", 20), 50, 0, hashed(strings.Repeat("🔒", 20))},
		{"case78/80x_limit100_reserve26_hashed", "test", x(80), 100, 26, "test:" + hashed("test:"+x(80))},
		{"case78/nfc_before_hashing", "test", strings.Repeat(coreCafeDecomposed, 100), 100, 0, "test:" + hashed("test:"+strings.Repeat(coreCafeComposed, 100))},
		{"case78/nfc_short_key", "test", coreCafeDecomposed, 100, 0, "test:" + coreCafeComposed},
		{"case80/redis_base", "syncguard", "resource:123", 1000, 26, "syncguard:resource:123"},
		{"case80/redis_fence", "syncguard", "fence:syncguard:resource:123", 1000, 26, "syncguard:fence:syncguard:resource:123"},
		{"case78/redis_max_key_not_hashed", "syncguard", strings.Repeat("🔒", 128), 1000, 26, "syncguard:" + strings.Repeat("🔒", 128)},
		{"case78/prefix_fits_exactly_after_hash", x(27), x(500), 50, 0, x(27) + ":" + hashed(x(27)+":"+x(500))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := StorageKey(tt.prefix, tt.key, tt.limit, tt.reserve)
			if err != nil {
				t.Fatalf("StorageKey error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("StorageKey(%q, %d bytes, %d, %d) (-want +got):\n%s", tt.prefix, len(tt.key), tt.limit, tt.reserve, diff)
			}
			if len(got)+tt.reserve > tt.limit {
				t.Errorf("len(%q)+%d > %d", got, tt.reserve, tt.limit)
			}
		})
	}

	t.Run("case78/hashed_suffix_shape", func(t *testing.T) {
		t.Parallel()
		got, err := StorageKey("test", x(500), 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		suffix := strings.TrimPrefix(got, "test:")
		if !coreBase64urlRE.MatchString(suffix) {
			t.Errorf("suffix %q is not 22 base64url chars", suffix)
		}
		if suffix != HashedKey("test:"+x(500)) || suffix != hashed("test:"+x(500)) {
			t.Errorf("suffix %q does not reproduce SHA-256 -> 16 bytes -> base64url", suffix)
		}
		noPrefix, err := StorageKey("", x(500), 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(noPrefix) != 22 || strings.Contains(noPrefix, ":") {
			t.Errorf("empty-prefix hash %q: want 22 chars, no colon", noPrefix)
		}
	})

	t.Run("case78/different_prefixes_differ", func(t *testing.T) {
		t.Parallel()
		a, _ := StorageKey("app1", x(500), 100, 0)
		b, _ := StorageKey("app2", x(500), 100, 0)
		c, _ := StorageKey("app", "1"+x(499), 100, 0)
		if a[len("app1:"):] == b[len("app2:"):] {
			t.Errorf("app1 and app2 share the hash %q", a)
		}
		if a == c || a[len(a)-22:] == c[len(c)-22:] {
			t.Errorf("app1+x*500 and app+1x*499 collide: %q, %q", a, c)
		}
	})

	t.Run("case78/deterministic_100_repeats", func(t *testing.T) {
		t.Parallel()
		first, _ := StorageKey("test", x(500), 100, 0)
		for i := 0; i < 100; i++ {
			if got, _ := StorageKey("test", x(500), 100, 0); got != first {
				t.Fatalf("repeat %d: %q != %q", i, got, first)
			}
		}
	})

	t.Run("case78/reserve_does_not_change_hash", func(t *testing.T) {
		t.Parallel()
		a, _ := StorageKey("test", x(500), 100, 0)
		b, _ := StorageKey("test", x(500), 100, 26)
		c, _ := StorageKey("test", x(500), 1000, 600)
		if a != b || a != c {
			t.Errorf("hash depends on reserve: %q, %q, %q", a, b, c)
		}
	})

	t.Run("case78/1000_distinct_long_keys", func(t *testing.T) {
		t.Parallel()
		seen := make(map[string]int, 1000)
		for i := 0; i < 1000; i++ {
			got, err := StorageKey("test", fmt.Sprintf("%s-%d", x(200), i), 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !coreHashedSuffixRE.MatchString(got) {
				t.Fatalf("key %d not hashed: %q", i, got)
			}
			if j, dup := seen[got]; dup {
				t.Fatalf("keys %d and %d collide: %q", j, i, got)
			}
			seen[got] = i
		}
	})

	t.Run("case78/similar_inputs_differ_over_40_percent", func(t *testing.T) {
		t.Parallel()
		pairs := [][2]string{
			{x(500) + "1", x(500) + "2"},
			{x(500) + "a", x(500) + "b"},
			{"a" + x(500), "b" + x(500)},
			{x(500), x(501)},
			{x(250) + "y" + x(250), x(250) + "z" + x(250)},
		}
		for _, p := range pairs {
			a, _ := StorageKey("test", p[0], 100, 0)
			b, _ := StorageKey("test", p[1], 100, 0)
			ha, hb := a[len("test:"):], b[len("test:"):]
			diff := 0
			for i := range ha {
				if ha[i] != hb[i] {
					diff++
				}
			}
			if float64(diff) <= 0.4*float64(len(ha)) {
				t.Errorf("%q vs %q differ in %d of %d chars", ha, hb, diff, len(ha))
			}
		}
	})
}

func TestStorageKeyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		prefix, key    string
		limit, reserve int
		msg            string
	}{
		{"case79/empty_key", "test", "", 100, 0, "key must not be empty"},
		{"case79/empty_key_empty_prefix", "", "", 100, 0, "key must not be empty"},
		{"case79/prefix500_limit100", strings.Repeat("p", 500), "key", 100, 0, "prefix exceeds backend limit"},
		{"case79/prefix100_limit50", strings.Repeat("p", 100), "key", 50, 0, "prefix exceeds backend limit"},
		{"case79/prefix35_limit20", strings.Repeat("p", 35), "key", 20, 0, "prefix exceeds backend limit"},
		{"case79/test_reserve26_limit30", "test", "key", 30, 26, "prefix exceeds backend limit"},
		// Step 3 passes (30+1 ≤ 40) but the hashed result does not fit (step 6).
		{"case79/hashed_result_too_long", strings.Repeat("p", 30), strings.Repeat("x", 100), 40, 0, "prefix exceeds backend limit"},
		{"case79/empty_prefix_limit_below_hash", "", strings.Repeat("x", 100), 21, 0, "prefix exceeds backend limit"},
		{"case79/negative_limit", "", "k", -1, 0, "prefix exceeds backend limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := StorageKey(tt.prefix, tt.key, tt.limit, tt.reserve)
			coreRequireCode(t, err, InvalidArgument, tt.msg)
			if got != "" {
				t.Errorf("StorageKey returned %q with an error", got)
			}
		})
	}
}

// TestFenceKeyDerivation checks the two-step derivation of docs/contract.md#keys (Namespaces):
// fence = StorageKey(P, "fence:"+base, L, R) with base = StorageKey(P, key, L, R).
func TestFenceKeyDerivation(t *testing.T) {
	t.Parallel()
	type backend struct {
		name           string
		prefix         string
		limit, reserve int
		hashed         bool // both base and fence keys are hashed
	}
	backends := []backend{
		{"redis_default", "syncguard", 1000, 26, false},
		{"redis_long_prefix_hashed", strings.Repeat("p", 500), 1000, 26, true},
		{"postgres", "", 1700, 0, false},
		{"firestore", "", 1500, 0, false},
	}
	for _, b := range backends {
		t.Run("case80/"+b.name, func(t *testing.T) {
			t.Parallel()
			fences := make(map[string]int, 100)
			bases := make(map[string]int, 100)
			for i := 0; i < 100; i++ {
				key := fmt.Sprintf("%s:%03d", strings.Repeat("k", 500), i) // 504 bytes
				base, err := StorageKey(b.prefix, key, b.limit, b.reserve)
				if err != nil {
					t.Fatal(err)
				}
				fence, err := StorageKey(b.prefix, "fence:"+base, b.limit, b.reserve)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{base, fence} {
					if b.prefix != "" && !strings.HasPrefix(k, b.prefix+":") {
						t.Errorf("%q does not start with the prefix", k)
					}
					if len(k)+b.reserve > b.limit {
						t.Errorf("%q exceeds the budget", k)
					}
					if b.hashed && !coreHashedSuffixRE.MatchString(k) {
						t.Errorf("%q is not hashed", k)
					}
				}
				if j, dup := fences[fence]; dup {
					t.Fatalf("fence keys of %d and %d collide: %q", j, i, fence)
				}
				if j, dup := bases[base]; dup {
					t.Fatalf("base keys of %d and %d collide: %q", j, i, base)
				}
				if _, clash := bases[fence]; clash || fence == base {
					t.Fatalf("fence key %q equals a base key", fence)
				}
				fences[fence], bases[base] = i, i
			}
		})
	}

	t.Run("case80/redis_defaults_example", func(t *testing.T) {
		t.Parallel()
		base, err := StorageKey("syncguard", "resource:123", 1000, 26)
		if err != nil {
			t.Fatal(err)
		}
		fence, err := StorageKey("syncguard", "fence:"+base, 1000, 26)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"syncguard:resource:123", "syncguard:fence:syncguard:resource:123"}
		if diff := cmp.Diff(want, []string{base, fence}); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"case84/empty", "", "e3b0c44298fc1c149afbf4c8"},
		{"case84/resource_123", "resource:123", "f52f328d6111ae89dbcfcb99"},
		{"case84/cafe_composed", coreCafeComposed, "850f7dc43910ff890f8879c0"},
		{"case84/cafe_decomposed", coreCafeDecomposed, "850f7dc43910ff890f8879c0"},
		{"case84/padlock", "🔒", "6ae1d2ee2e9592ea2e665661"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HashKey(tt.in); got != tt.want {
				t.Errorf("HashKey(%+q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	t.Run("case84/shape", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{"", "🔒锁鍵", strings.Repeat("x", 10_000), "key-one", "abc\xff", strings.Repeat("🔒", 5000)} {
			got := HashKey(in)
			if !coreHashKeyRE.MatchString(got) {
				t.Errorf("HashKey(%d bytes) = %q, want 24 lowercase hex", len(in), got)
			}
			if again := HashKey(in); again != got {
				t.Errorf("HashKey not deterministic: %q then %q", got, again)
			}
		}
	})

	t.Run("case84/distinct", func(t *testing.T) {
		t.Parallel()
		if HashKey("key-one") == HashKey("key-two") {
			t.Error("key-one and key-two collide")
		}
		seen := make(map[string]int, 1000)
		for i := 0; i < 1000; i++ {
			h := HashKey(fmt.Sprintf("key-%d", i))
			if j, dup := seen[h]; dup {
				t.Fatalf("key-%d and key-%d collide: %s", j, i, h)
			}
			seen[h] = i
		}
	})

	t.Run("case84/matches_reference", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{"", "resource:123", coreCafeDecomposed, "🔒锁鍵", "ключ", "\U0001F600x\U00010000"} {
			if got, want := HashKey(in), coreRefHashKey(in); got != want {
				t.Errorf("HashKey(%+q) = %s, reference %s", in, got, want)
			}
		}
	})
}

// coreRefHashKey is an independent implementation of HashKey (docs/contract.md#numbers: first 12 bytes of SHA-256 of the NFC string) that
// splits astral code points into surrogates by hand.
func coreRefHashKey(s string) string {
	sum := sha256.Sum256([]byte(norm.NFC.String(s)))
	return fmt.Sprintf("%x", sum[:12])
}

// TestHashKeyHidesLockID is the attack of security finding 9: the former
// HashKey was a linear polynomial of the input's code units, so changing
// one character of a lock ID moved each accumulator by a fixed amount and
// the 24 hex digits gave away about 96 of the ID's 128 random bits. A
// cryptographic hash shows no such structure.
func TestHashKeyHidesLockID(t *testing.T) {
	t.Parallel()
	acc := func(h string, i int) uint64 {
		v, err := strconv.ParseUint(h[8*i:8*i+8], 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	deltas := make(map[[3]uint64]int)
	for i := 0; i < 64; i++ {
		id := NewLockID()
		ha, hb := HashKey(id[:LockIDLen-1]+"A"), HashKey(id[:LockIDLen-1]+"B")
		var d [3]uint64
		for j := range d {
			d[j] = (acc(hb, j) - acc(ha, j)) & 0xffffffff
		}
		deltas[d]++
	}
	if len(deltas) < 60 {
		t.Fatalf("changing the last character of 64 random lock IDs moved their hashes by only %d distinct deltas: the hash is linear", len(deltas))
	}
}

func TestHashedKey(t *testing.T) {
	t.Parallel()
	t.Run("case78/shape_and_sha256", func(t *testing.T) {
		for _, in := range []string{"", "test:" + strings.Repeat("x", 500), "🔒"} {
			got := HashedKey(in)
			if !coreBase64urlRE.MatchString(got) || !utf8.ValidString(got) {
				t.Errorf("HashedKey(%q) = %q, want 22 base64url chars", in, got)
			}
			sum := sha256.Sum256([]byte(in))
			raw, err := base64.RawURLEncoding.DecodeString(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sum[:16], raw); diff != "" {
				t.Errorf("decoded digest (-want +got):\n%s", diff)
			}
		}
	})
}
