package postgres

import (
	"strings"
	"testing"

	"github.com/syncguard/syncguard/driver"
)

// TestDBTextIsInjective: the stored form of distinct normalised keys is
// distinct (U+2126, which stands for NUL, never survives normalisation),
// keys without NUL are stored unchanged, and fromDBText inverts dbText.
func TestDBTextIsInjective(t *testing.T) {
	t.Parallel()
	keys := []string{
		"a", "a\x00", "aΩ", "a\u2126", "a\u2126\x00", "\x00", "\x00\x00", "Ω\x00Ω",
		"\u2126", "ohm \u2126 sign", strings.Repeat("\x00", 512), "plain:key", "tab\tnl\n",
	}
	stored := map[string]string{}
	for _, key := range keys {
		k, err := driver.NormalizeKey(key)
		if err != nil {
			t.Fatalf("NormalizeKey(%q): %v", key, err)
		}
		if strings.ContainsRune(k, nulStandIn) {
			t.Fatalf("normalised key %q contains U+2126", k)
		}
		s := dbText(k)
		if strings.IndexByte(s, 0) >= 0 {
			t.Errorf("dbText(%q) = %q contains NUL", k, s)
		}
		if !strings.Contains(k, "\x00") && s != k {
			t.Errorf("dbText(%q) = %q; a key without NUL must be stored unchanged", k, s)
		}
		if back := fromDBText(s); back != k {
			t.Errorf("fromDBText(dbText(%q)) = %q", k, back)
		}
		if other, ok := stored[s]; ok && other != k {
			t.Errorf("%q and %q are both stored as %q", other, k, s)
		}
		stored[s] = k
	}
	base, err := baseKey("k\x00")
	if err != nil {
		t.Fatal(err)
	}
	fk, err := fenceKey(base)
	if err != nil {
		t.Fatal(err)
	}
	if base != "k\u2126" || fk != "fence:k\u2126" {
		t.Errorf("baseKey, fenceKey of %q = %q, %q; want %q, %q", "k\x00", base, fk, "k\u2126", "fence:k\u2126")
	}
	// The fence key of Ω's lock differs from the NUL key's.
	if b2, _ := baseKey("kΩ"); b2 == base {
		t.Errorf("baseKey(kΩ) = baseKey(k\\x00) = %q", b2)
	} else if f2, _ := fenceKey(b2); f2 == fk {
		t.Errorf("fenceKey(kΩ) = fenceKey(k\\x00) = %q", f2)
	}
}
