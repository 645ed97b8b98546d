package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"redis://user:secret@127.0.0.1:6599/%zz", "redis://user:xxxxx@127.0.0.1:6599/%zz"},
		{`parse "redis://user:secret@127.0.0.1:6599/%zz": invalid URL escape "%zz"`, `parse "redis://user:xxxxx@127.0.0.1:6599/%zz": invalid URL escape "%zz"`},
		{"postgres://u:p%40ss@h:5432/db and rediss://:tok@h2", "postgres://u:xxxxx@h:5432/db and rediss://:xxxxx@h2"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://user@127.0.0.1:6379", "redis://user@127.0.0.1:6379"},
		{"no url here: a:b@c", "no url here: a:b@c"},
		{`parse "redis://u:pa/ss@h": invalid port`, `parse "redis://u:xxxxx@h": invalid port`},
	}
	for _, tt := range tests {
		if got := redactURLs(tt.in); got != tt.want {
			t.Errorf("redactURLs(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactedURLAndPassword(t *testing.T) {
	t.Parallel()
	tests := []struct{ raw, pw, redacted string }{
		{"redis://user:secret@127.0.0.1:6599/%zz", "secret", "redis://user:xxxxx@127.0.0.1:6599/%zz"},
		{"redis://user:secret@127.0.0.1:6379", "secret", "redis://user:xxxxx@127.0.0.1:6379"},
		{"redis://:s%2Fcret@h:1/0", "s%2Fcret", "redis://:xxxxx@h:1/0"},
		{"redis:user:secret@h", "secret", "redis:user:secret@h"}, // opaque: url.Parse keeps it; the printer masks "secret"
		{"memory://", "", "memory://"},
		{"redis://h?x=a@c", "", "redis://h?x=a@c"},
		{"redis://u:pa/ss@h:1", "pa/ss", "redis://u:xxxxx@h:1"},
	}
	for _, tt := range tests {
		if got := urlPassword(tt.raw); got != tt.pw {
			t.Errorf("urlPassword(%q) = %q; want %q", tt.raw, got, tt.pw)
		}
		if got := redactedURL(tt.raw); got != tt.redacted {
			t.Errorf("redactedURL(%q) = %q; want %q", tt.raw, got, tt.redacted)
		}
	}
}

// TestPrinterMasks: whatever a message contains, the printer masks the
// backend URL's password (escaped or not) and shows hidden lock IDs as
// hashes, in text and JSON.
func TestPrinterMasks(t *testing.T) {
	t.Parallel()
	const id = "AbCdEfGhIjKlMnOpQrStUv"
	for _, asJSON := range []bool{false, true} {
		var b bytes.Buffer
		p := &printer{cmd: "run", w: &b, json: asJSON}
		p.secretURL("redis://user:p%40ssw0rd@127.0.0.1:6379")
		p.hideID(id)
		p.line("x", map[string]any{"error": "auth p@ssw0rd failed for " + id}, "auth p%40ssw0rd / p@ssw0rd failed for "+id)
		p.logger().Warn("lease lost", "detail", "p@ssw0rd "+id)
		out := b.String()
		for _, leak := range []string{"p@ssw0rd", "p%40ssw0rd", id} {
			if strings.Contains(out, leak) {
				t.Errorf("json=%v: output shows %q:\n%s", asJSON, leak, out)
			}
		}
		if !strings.Contains(out, driver.HashKey(id)) {
			t.Errorf("json=%v: output lacks the lock ID's hash:\n%s", asJSON, out)
		}
		if asJSON {
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !json.Valid([]byte(l)) {
					t.Errorf("not JSON: %q", l)
				}
			}
		}
	}
}

func TestFlagGiven(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"--json"}, true},
		{[]string{"-json"}, true},
		{[]string{"--json=false"}, false},
		{[]string{"--json=true", "--json=0"}, false},
		{[]string{"--key", "k", "--", "cmd", "--json"}, false},
		{[]string{"--jsonx"}, false},
	}
	for _, tt := range tests {
		if got := flagGiven(tt.args, "json"); got != tt.want {
			t.Errorf("flagGiven(%q) = %v; want %v", tt.args, got, tt.want)
		}
	}
}

// TestChildEnv: the command's environment lacks SYNCGUARD_BACKEND and
// carries the lock's variables once.
func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"PATH=/bin", "SYNCGUARD_BACKEND=redis://u:secret@h", "SYNCGUARD_LOCK_ID=old", "SYNCGUARD_TTL=5s"},
		held{lockID: "AbCdEfGhIjKlMnOpQrStUv", fence: 7}, "k")
	want := []string{"PATH=/bin", "SYNCGUARD_TTL=5s", "SYNCGUARD_FENCE=000000000000007", "SYNCGUARD_LOCK_ID=AbCdEfGhIjKlMnOpQrStUv", "SYNCGUARD_KEY=k"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("childEnv (-want +got):\n%s", diff)
	}
}

func TestExitCodeFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{usageError("x"), exitUsage},
		{unavailableError("x"), exitUnavailable},
		{driver.NewError(driver.InvalidArgument, "x"), exitUsage},
		{driver.NewError(driver.AuthFailed, "x"), exitUnavailable},
		{driver.NewError(driver.ServiceUnavailable, "x"), exitUnavailable},
		{context.DeadlineExceeded, exitUnavailable},
	}
	for _, tt := range tests {
		if got := exitCodeFor(tt.err); got != tt.want {
			t.Errorf("exitCodeFor(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}

// TestParseErrorText: net/url's error for a password with an unescaped
// "/", "#" or "?" quotes part of the password; the message masks it (the
// ports are closed: nothing is contacted).
func TestParseErrorText(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis://u:sec/ret@127.0.0.1:6379", "postgres://u:sec#ret@127.0.0.1/db", "redis://u:sec?ret@127.0.0.1:1"} {
		_, err := openBackend(context.Background(), raw, newConfig(nil), nil)
		if err == nil {
			t.Errorf("%s: opened", raw)
			continue
		}
		pw := urlPassword(raw)
		for _, frag := range []string{pw, "sec", "ret"} {
			if strings.Contains(err.Error(), frag) {
				t.Errorf("%s: error %q shows %q", raw, err, frag)
			}
		}
	}
}

// TestLockIDReadAsFlagIsHidden: a lock ID starting with '-' that reads as
// a flag is named by the usage error only as its hash (it is a
// credential, and no line shows a lock ID without --raw), whatever the
// number of leading dashes; --raw shows it.
func TestLockIDReadAsFlagIsHidden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   string
		pre  []string // flags before the ID
		raw  bool
	}{
		{name: "one dash", id: "-IVksgpdPRfBXGV1hxGNJg"},
		{name: "one dash json", id: "-IVksgpdPRfBXGV1hxGNJg", pre: []string{"--json"}},
		{name: "two dashes", id: "--VksgpdPRfBXGV1hxGNJg"},
		{name: "two dashes json", id: "--VksgpdPRfBXGV1hxGNJg", pre: []string{"--json"}},
		{name: "three dashes", id: "---ksgpdPRfBXGV1hxGNJg"},
		{name: "raw", id: "-IVksgpdPRfBXGV1hxGNJg", pre: []string{"--raw"}, raw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"release"}, tt.pre...), tt.id)
			code := Main(context.Background(), args, &stdout, &stderr)
			if diff := cmp.Diff(exitUsage, code); diff != "" {
				t.Errorf("exit code (-want +got):\n%s", diff)
			}
			out := stderr.String()
			core := strings.TrimLeft(tt.id, "-") // the ID without the dashes a flag parser strips
			if got := strings.Contains(out, core); got != tt.raw {
				t.Errorf("stderr shows the lock ID = %v, want %v:\n%s", got, tt.raw, out)
			}
			if !tt.raw && !strings.Contains(out, driver.HashKey(tt.id)) {
				t.Errorf("stderr lacks the lock ID's hash %s:\n%s", driver.HashKey(tt.id), out)
			}
			if !strings.Contains(out, "a lock ID starting with '-' must come after --") {
				t.Errorf("stderr lacks the hint:\n%s", out)
			}
		})
	}
}

// TestBackendHelpSurvivesRedaction: every line goes through redactURLs, so
// the backend URL help must hold nothing that reads as a password (its
// "redis://[user:pass@]…" came out as "[user:xxxxx@]", out of column).
func TestBackendHelpSurvivesRedaction(t *testing.T) {
	if got := redactURLs(backendURLHelp); got != backendURLHelp {
		t.Errorf("redactURLs changed the backend URL help:\n%s", got)
	}
}
