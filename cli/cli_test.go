package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDemoShowsDoubleChargesOnlyWithoutLock(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	// 20ms between reading and charging makes the unlocked race certain
	// even on a loaded machine: every worker reads "pending" first.
	res, err := runDemo(context.Background(), demoConfig{workers: 6, payments: 8, work: 20 * time.Millisecond}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.unlockedDoubles == 0 {
		t.Errorf("unlocked run had no double charge; output:\n%s", out.String())
	}
	if res.lockedDoubles != 0 {
		t.Errorf("locked run had %d double charges; output:\n%s", res.lockedDoubles, out.String())
	}
	for _, want := range []string{"Run 1, without a lock", "Run 2, with SyncGuard", "0 of 8 payments charged twice", "fence 00", "exactly once"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{name: "no args", args: nil, wantCode: exitUsage, wantErr: "Usage:"},
		{name: "unknown", args: []string{"frobnicate"}, wantCode: exitUsage, wantErr: `unknown command "frobnicate"`},
		{name: "unknown json", args: []string{"--json", "status"}, wantCode: exitUsage, wantErr: `{"error":"unknown command \"--json\": run, status, release, demo or version","event":"error","exitCode":2,`},
		{name: "version json", args: []string{"version", "--json"}, wantCode: exitOK, wantOut: `{"version":"`},
		{name: "version", args: []string{"version"}, wantCode: exitOK, wantOut: "syncguard "},
		{name: "help", args: []string{"help"}, wantCode: exitOK, wantOut: "syncguard demo"},
		{name: "demo bad flag", args: []string{"demo", "-nope"}, wantCode: exitUsage, wantErr: "flag provided but not defined"},
		{name: "lock ID read as a flag", args: []string{"release", "-IVksgpdPRfBXGV1hxGNJg"}, wantCode: exitUsage,
			wantErr: "a lock ID starting with '-' must come after --"},
		{name: "key read as a flag", args: []string{"status", "-rf"}, wantCode: exitUsage,
			wantErr: "flag provided but not defined: -rf (an argument starting with '-', such as a key, must come after --)"},
		{name: "demo bad workers", args: []string{"demo", "-workers", "0"}, wantCode: exitUsage, wantErr: "-workers must be"},
		{name: "demo small", args: []string{"demo", "-workers", "3", "-payments", "2", "-work", "1ms"}, wantCode: exitOK, wantOut: "exactly once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestDemoCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if _, err := runDemo(ctx, demoConfig{workers: 2, payments: 2, work: 10 * time.Millisecond}, &out); err == nil {
		t.Fatal("runDemo with a cancelled context succeeded")
	}
}

// TestUsageSynopses: the synopsis of each command in "syncguard --help"
// is the first line of that command's own --help.
func TestUsageSynopses(t *testing.T) {
	t.Parallel()
	var top bytes.Buffer
	usage(&top)
	tests := []struct {
		cmd, usage string
	}{
		{"run", runUsage},
		{"status", statusUsage},
		{"release", releaseUsage},
		{"demo", demoUsage},
		{"version", versionUsage},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			t.Parallel()
			first, _, _ := strings.Cut(tt.usage, "\n")
			want := "  " + strings.TrimPrefix(first, "Usage: ") + "\n"
			if !strings.Contains(top.String(), want) {
				t.Errorf("syncguard --help lacks the synopsis of %s --help, %q:\n%s", tt.cmd, want, top.String())
			}
		})
	}
}
