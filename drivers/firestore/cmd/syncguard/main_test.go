package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// TestRunOnFirestore builds the binary and runs `syncguard run` against
// the emulator (FIRESTORE_EMULATOR_HOST): the command gets its fence, and
// two runs in parallel on one key take turns.
func TestRunOnFirestore(t *testing.T) {
	if os.Getenv("FIRESTORE_EMULATOR_HOST") == "" {
		if os.Getenv("SYNCGUARD_REQUIRE_BACKENDS") == "1" {
			t.Fatal("FIRESTORE_EMULATOR_HOST is not set; scripts/test starts the emulator")
		}
		t.Skip("FIRESTORE_EMULATOR_HOST is not set; set SYNCGUARD_REQUIRE_BACKENDS=1 to fail instead")
	}
	bin := filepath.Join(t.TempDir(), "syncguard")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var b [5]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	backend := "firestore://demo-test?locks=clilocks_" + tok + "&fences=clifences_" + tok
	out, err := exec.Command(bin, "run", "--backend", backend, "--key", "k", "--", "sh", "-c", "echo fence=$SYNCGUARD_FENCE").Output()
	if err != nil || !regexp.MustCompile(`^fence=\d{15}\n$`).Match(out) {
		t.Fatalf("run = %q, %v", out, err)
	}
	log := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			cmd := exec.Command(bin, "run", "--backend", backend, "--key", "turns", "--wait", "60s", "--",
				"sh", "-c", `echo start >> "$1"; sleep 0.3; echo end >> "$1"`, "sh", log)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Errorf("run: %v: %s", err, stderr.String())
			}
		})
	}
	wg.Wait()
	got, _ := os.ReadFile(log)
	if strings.TrimSpace(string(got)) != "start\nend\nstart\nend" {
		t.Errorf("sections overlapped or are missing:\n%s", got)
	}
	if out, _ := exec.Command(bin, "status", "--raw", "--backend", backend, "turns").Output(); string(out) != "turns: free\n" {
		t.Errorf("status after the runs = %q", out)
	}
}

// TestFirestoreURLErrors: a firestore:// URL that cannot work is a usage
// error (exit 2), with no emulator needed.
func TestFirestoreURLErrors(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "syncguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, tc := range []struct{ url, want string }{
		{"firestore://", "needs a project"},
		{"firestore://p?foo=bar", `unknown option "foo"`},
	} {
		cmd := exec.Command(bin, "run", "--backend", tc.url, "--key", "k", "--", "true")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: %v, stderr %q; want exit 2 and %q", tc.url, err, stderr.String(), tc.want)
		}
	}
}
