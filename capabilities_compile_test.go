package syncguard

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCapabilitiesCompileTime proves that capability misuse is a compile
// error: the programs in testdata/capcheck are built with the go tool and
// must fail (or succeed) as their capability types dictate.
//
// The build runs in a temporary copy of the module (go.mod, go.sum, the
// root package, the packages it imports from the module and
// testdata/capcheck) with -mod=mod, so the go tool may adjust the copy's
// go.mod without touching the real one.
func TestCapabilitiesCompileTime(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs with the go tool")
	}
	goTool := findGoTool(t)
	mod := copyModuleForCapcheck(t)

	tests := []struct {
		name     string
		wantOK   bool
		wantErrs []string
	}{
		{name: "fenced", wantOK: true},
		{name: "unfenced", wantErrs: []string{
			"main.go:33:31: in call to syncguard.FenceOf, C (type caps) does not satisfy syncguard.Fenced",
		}},
		{name: "unfencedprims", wantErrs: []string{
			"main.go:32:31: in call to syncguard.FenceOf, C (type caps) does not satisfy syncguard.Fenced",
			"main.go:34:34: in call to syncguard.NewFencedWriter, C (type caps) does not satisfy syncguard.Fenced",
			"main.go:35:37: in call to syncguard.NewOncePerKey[int], C (type caps) does not satisfy syncguard.Fenced",
			"main.go:36:25: in call to syncguard.NewFenced, C (type caps) does not satisfy syncguard.Fenced",
		}},
		{name: "lockonly", wantErrs: []string{
			"main.go:19:23: in call to syncguard.FenceOf, C (type redis.LockOnlyCapabilities) does not satisfy syncguard.Fenced",
			"main.go:20:34: in call to syncguard.NewFencedWriter, C (type redis.LockOnlyCapabilities) does not satisfy syncguard.Fenced",
			"main.go:21:37: in call to syncguard.NewOncePerKey[int], C (type redis.LockOnlyCapabilities) does not satisfy syncguard.Fenced",
			"main.go:22:22: in call to semaphore.New, C (type redis.LockOnlyCapabilities) does not satisfy syncguard.Fenced",
			"main.go:23:21: in call to election.New, C (type redis.LockOnlyCapabilities) does not satisfy syncguard.Fenced",
		}},
		{name: "clienttime", wantErrs: []string{
			"main.go:31:29: in call to needsServerTime, C (type caps) does not satisfy syncguard.ServerTime",
		}},
		{name: "inprocess", wantErrs: []string{
			"main.go:37:30: in call to needsFairHandoff, C (type caps) does not satisfy syncguard.FairHandoff",
			"main.go:38:31: in call to needsCrossProcess, C (type caps) does not satisfy syncguard.CrossProcess",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(goTool, "build", "-o", filepath.Join(t.TempDir(), "bin"), "./testdata/capcheck/"+tc.name)
			cmd.Dir = mod
			cmd.Env = append(os.Environ(),
				"GOFLAGS=-mod=mod -buildvcs=false",
				"GOWORK=off",
				"GOTOOLCHAIN=local",
				"GOPROXY=off",
			)
			out, err := cmd.CombinedOutput()
			if tc.wantOK {
				if err != nil {
					t.Fatalf("build failed: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("build succeeded; capability misuse must not compile")
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(string(out), want) {
					t.Errorf("build output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// findGoTool returns the go tool of $GOROOT (go test sets it for the
// toolchain running the test), else the one on PATH.
func findGoTool(t *testing.T) string {
	t.Helper()
	name := "go"
	if runtime.GOOS == "windows" {
		name = "go.exe"
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not found: %v", err)
	}
	return p
}

// copyModuleForCapcheck copies go.mod, go.sum, the non-test Go files of
// the root package and of the module's packages it imports, and
// testdata/capcheck into a temporary directory.
func copyModuleForCapcheck(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	copyFile := func(src, to string) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		copyFile(f, filepath.Join(dst, f))
	}
	srcs, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// The module's packages the root package imports.
	for _, dir := range []string{"driver", filepath.Join("internal", "caller"), filepath.Join("drivers", "redis"), "semaphore", "election"} {
		pkg, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, pkg...)
	}
	for _, f := range srcs {
		if !strings.HasSuffix(f, "_test.go") {
			copyFile(f, filepath.Join(dst, f))
		}
	}
	root := filepath.Join("testdata", "capcheck")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		copyFile(p, filepath.Join(dst, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
