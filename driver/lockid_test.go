package driver

import (
	"regexp"
	"strings"
	"testing"
)

var coreLockIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func TestNewLockID(t *testing.T) {
	t.Parallel()
	t.Run("case85/shape_and_uniqueness", func(t *testing.T) {
		t.Parallel()
		// 5000 draws: without the rule, about 78 would start with '-'.
		seen := make(map[string]struct{}, 5000)
		for i := 0; i < 5000; i++ {
			id := NewLockID()
			if len(id) != LockIDLen || !coreLockIDRE.MatchString(id) {
				t.Fatalf("NewLockID() = %q, want 22 chars matching %s", id, coreLockIDRE)
			}
			if strings.ContainsAny(id, "+/=") {
				t.Fatalf("NewLockID() = %q contains + / or =", id)
			}
			if !ValidLockID(id) || ValidateLockID(id) != nil {
				t.Fatalf("NewLockID() = %q is not accepted by ValidLockID/ValidateLockID", id)
			}
			if id[0] == '-' {
				t.Fatalf("NewLockID() = %q starts with '-' (a command line would take it for a flag)", id)
			}
			if _, dup := seen[id]; dup {
				t.Fatalf("NewLockID() repeated %q after %d draws", id, i)
			}
			seen[id] = struct{}{}
		}
	})
}

// coreLockID22 returns a 22-byte string of valid characters with s at position 10.
func coreLockID22(s string) string {
	base := "ABCDEFGHIJKLMNOPQRSTUV"
	return base[:10] + s + base[10+len(s):]
}

func TestValidLockID(t *testing.T) {
	t.Parallel()
	malformed := []struct{ name, id string }{
		{"case66/empty", ""},
		{"case67/invalid-lockid", "invalid-lockid"},
		{"case67/too-short", "too-short"},
		{"case67/way_too_long", "this-is-way-too-long-for-valid-lockid"},
		{"case67/44_chars", strings.Repeat("A", 44)},
		{"case67/special", "invalid!@#$%"},
		{"case67/spaces_not_allowed", "spaces not allowed"},
		{"case67/1_char", "A"},
		{"case67/7_chars", "ABCDEFG"},
		{"case67/21_chars", strings.Repeat("a", 21)},
		{"case67/23_chars", strings.Repeat("a", 23)},
		{"case67/26_chars", strings.Repeat("a", 26)},
		{"case67/36_chars", "123e4567-e89b-12d3-a456-426614174000"},
		{"case67/plus", coreLockID22("+")},
		{"case67/slash", coreLockID22("/")},
		{"case67/equals", coreLockID22("=")},
		{"case67/padded_base64", "ABCDEFGHIJKLMNOPQRST=="},
		{"case67/at", coreLockID22("@")},
		{"case67/bang", coreLockID22("!")},
		{"case67/hash", coreLockID22("#")},
		{"case67/dollar", coreLockID22("$")},
		{"case67/percent", coreLockID22("%")},
		{"case67/ampersand", coreLockID22("&")},
		{"case67/star", coreLockID22("*")},
		{"case67/dot", coreLockID22(".")},
		{"case67/colon", coreLockID22(":")},
		{"case67/space", coreLockID22(" ")},
		{"case67/tab", coreLockID22("\t")},
		{"case67/newline", coreLockID22("\n")},
		{"case67/cr", coreLockID22("\r")},
		{"case67/nul", coreLockID22("\x00")},
		{"case67/all_spaces", strings.Repeat(" ", 22)},
		{"case67/leading_space", " ABCDEFGHIJKLMNOPQRSTU"},
		{"case67/trailing_space", "ABCDEFGHIJKLMNOPQRSTU "},
		{"case67/leading_space_23", " ABCDEFGHIJKLMNOPQRSTUV"},
		{"case67/trailing_newline_23", "ABCDEFGHIJKLMNOPQRSTUV\n"},
		// Cyrillic А (U+0410) and Т (U+0422) look like Latin A and T. As 22
		// runes they are 23 bytes; replacing two ASCII letters by one look-alike
		// gives exactly 22 bytes.
		{"case67/cyrillic_A_22_runes", "\u0410BCDEFGHIJKLMNOPQRSTUV"},
		{"case67/cyrillic_T_22_runes", "ABCDEFGHIJKLMNOPQRS\u0422UV"},
		{"case67/cyrillic_A_22_bytes", "\u0410CDEFGHIJKLMNOPQRSTUV"},
		{"case67/cyrillic_T_22_bytes", "ABCDEFGHIJKLMNOPQRS\u0422V"},
		{"case67/fullwidth_digit", "ABCDEFGHIJKLMNOPQRS\uff11"},
		{"case67/invalid_utf8", coreLockID22("\xff")},
		{"case69/unicode_lock", "lock-with-unicode-🔒"},
		{"case69/slashes", "invalid/lock/id"},
	}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if ValidLockID(tt.id) {
				t.Errorf("ValidLockID(%+q) = true", tt.id)
			}
			le := coreRequireCode(t, ValidateLockID(tt.id), InvalidArgument, "invalid lockId format")
			if le.Error() != "syncguard: invalid lockId format" {
				t.Errorf("message = %q", le.Error())
			}
		})
	}

	wellFormed := []string{
		"ABCDEFGHIJKLMNOPQRSTUV",
		"abcdefghijklmnopqrstuv",
		"0123456789ABCDEFGHIJKL",
		"___---_-_-_-_-_-_-_-_-",
		"aA0-_bB1-_cC2-_dD3-_eE",
		"AAAAAAAAAAAAAAAAAAAAAA",
		"BBBBBBBBBBBBBBBBBBBBBB",
		"zzzzzzzzzzzzzzzzzzzzzz",
	}
	for _, id := range wellFormed {
		t.Run("case68/"+id, func(t *testing.T) {
			t.Parallel()
			if !ValidLockID(id) {
				t.Errorf("ValidLockID(%q) = false", id)
			}
			if err := ValidateLockID(id); err != nil {
				t.Errorf("ValidateLockID(%q) = %v", id, err)
			}
		})
	}

	t.Run("case67/error_carries_short_id_only", func(t *testing.T) {
		t.Parallel()
		short := "invalid-lockid"
		if le := coreRequireCode(t, ValidateLockID(short), InvalidArgument, ""); le.LockID != short {
			t.Errorf("LockID = %q, want %q", le.LockID, short)
		}
		long := strings.Repeat("!", 10_000)
		if le := coreRequireCode(t, ValidateLockID(long), InvalidArgument, ""); le.LockID != "" {
			t.Errorf("LockID of an over-long input has %d bytes, want it dropped", len(le.LockID))
		}
	})
}
