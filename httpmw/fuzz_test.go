package httpmw_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/syncguard/syncguard/httpmw"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{`8e03978e-40d5-43e8-bc93-6894a57f9324`, "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{`  "spaced key"  `, "spaced key", true},
		{`"esc \" and \\"`, `esc " and \`, true},
		{`"bad \n escape"`, "", false},
		{`""`, "", false},
		{``, "", false},
		{`"open`, "", false},
		{`"a";p=1`, "", false},
		{`a b`, "", false},
		{`a,b`, "", false},
		{"\"caf\xc3\xa9\"", "", false},
		{`"` + strings.Repeat("k", 255) + `"`, strings.Repeat("k", 255), true},
		{`"` + strings.Repeat("k", 256) + `"`, "", false},
		{strings.Repeat("k", 256), "", false},
	}
	for _, tc := range tests {
		got, err := httpmw.ParseKey(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseKey(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseKey: ParseKey never panics, accepts only 1–255 printable ASCII
// bytes, and a key it accepts survives being serialised as a Structured
// Field string and parsed again.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `"a\\b"`, `""`, `"`, ` "x" `, "\"\x7f\"", `"a";b`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		k, err := httpmw.ParseKey(v)
		if err != nil {
			if k != "" {
				t.Fatalf("error with key %q", k)
			}
			return
		}
		if len(k) < 1 || len(k) > httpmw.MaxKeyLength {
			t.Fatalf("key length %d", len(k))
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				t.Fatalf("key %q has byte %#x", k, k[i])
			}
		}
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k) + `"`
		if k2, err := httpmw.ParseKey(quoted); err != nil || k2 != k {
			t.Fatalf("round trip of %q via %s = %q, %v", k, quoted, k2, err)
		}
	})
}

// FuzzFingerprint: the fingerprint is deterministic and tells apart
// requests that differ in method, target or body.
func FuzzFingerprint(f *testing.F) {
	f.Add("POST", "/a", "x=1", []byte("body"), []byte("other"))
	f.Add("PATCH", "/a/b%2Fc", "", []byte{}, []byte{0})
	f.Fuzz(func(t *testing.T, method, path, query string, body, body2 []byte) {
		r1, err := http.NewRequest(method, "http://h/"+strings.TrimPrefix(path, "/")+"?"+query, nil)
		if err != nil {
			return
		}
		fp := httpmw.Fingerprint(r1, body)
		if len(fp) != 64 {
			t.Fatalf("fingerprint %q", fp)
		}
		if fp2 := httpmw.Fingerprint(r1, append([]byte(nil), body...)); fp2 != fp {
			t.Fatal("not deterministic")
		}
		if string(body) != string(body2) && httpmw.Fingerprint(r1, body2) == fp {
			t.Fatal("bodies collide")
		}
		r2 := r1.Clone(r1.Context())
		r2.Method = r1.Method + "X"
		if httpmw.Fingerprint(r2, body) == fp {
			t.Fatal("methods collide")
		}
		r3 := r1.Clone(r1.Context())
		r3.URL.RawQuery = r1.URL.RawQuery + "&z=" + strconv.Itoa(len(body))
		if httpmw.Fingerprint(r3, body) == fp {
			t.Fatal("queries collide")
		}
	})
}
