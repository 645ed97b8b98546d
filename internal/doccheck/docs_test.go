package doccheck

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock is a fenced ```go block of a Markdown file.
type goBlock struct {
	file string
	line int
	code string
}

var fence = regexp.MustCompile("(?m)^```go[ \t]*\n")

func goBlocks(t *testing.T, path string) []goBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	var out []goBlock
	for _, loc := range fence.FindAllStringIndex(s, -1) {
		rest := s[loc[1]:]
		end := strings.Index(rest, "\n```")
		if end < 0 {
			t.Errorf("%s: unterminated code block", path)
			continue
		}
		out = append(out, goBlock{file: path, line: strings.Count(s[:loc[1]], "\n") + 1, code: rest[:end+1]})
	}
	return out
}

// TestRunnableDocsCompile compiles every Go block in README.md and docs/
// that is a complete program or package (it starts with a package
// clause): such blocks claim to be runnable, so they must build against
// the current API. Other blocks are fragments, type-checked by
// TestDocFragmentsTypeCheck. Blocks that import the Firestore driver or
// otelsyncguard belong to those modules and are compiled there.
func TestRunnableDocsCompile(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	paths, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	paths = append(paths, filepath.Join(root, "README.md"))
	overlay := map[string]string{}
	var pkgs []string
	tmp := t.TempDir()
	fragments := 0
	for _, p := range paths {
		for _, b := range goBlocks(t, p) {
			if !strings.HasPrefix(strings.TrimSpace(b.code), "package ") {
				fragments++
				continue
			}
			if strings.Contains(b.code, "syncguard/drivers/firestore") {
				t.Logf("%s:%d: Firestore block, compiled in that module", rel(root, b.file), b.line)
				continue
			}
			if strings.Contains(b.code, "syncguard/otelsyncguard") {
				t.Logf("%s:%d: OpenTelemetry block, compiled by otelsyncguard's TestDocsCompile", rel(root, b.file), b.line)
				continue
			}
			n := len(pkgs)
			src := filepath.Join(tmp, fmt.Sprintf("doc%d.go", n))
			header := fmt.Sprintf("// Code from %s:%d.\n\n", rel(root, b.file), b.line)
			if err := os.WriteFile(src, []byte(header+b.code), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "internal", "doccheck", "testdata", fmt.Sprintf("doc%d", n))
			overlay[filepath.Join(dir, "main.go")] = src
			pkgs = append(pkgs, "./internal/doccheck/testdata/"+fmt.Sprintf("doc%d", n))
			t.Logf("%s:%d: runnable block → %s", rel(root, b.file), b.line, pkgs[n])
		}
	}
	if len(pkgs) == 0 {
		t.Fatal("no runnable Go blocks found in docs/: the check would be vacuous")
	}
	ov, _ := json.Marshal(map[string]any{"Replace": overlay})
	ovPath := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "bin") + string(filepath.Separator)
	cmd := exec.Command("go", append([]string{"build", "-overlay=" + ovPath, "-o", bin}, pkgs...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("runnable docs blocks do not compile:\n%s", out)
	}
	t.Logf("%d runnable blocks compiled, %d fragments", len(pkgs), fragments)
}

func rel(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
