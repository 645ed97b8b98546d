package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The suite runs against drivers/memory in that package's own test
// (drivers/memory/conformance_test.go), which reaches the driver's state for
// every optional hook; reference_test.go runs it against a reference driver.

var idPattern = regexp.MustCompile(`^(case\d{3}(_fix)?|[FRGWK]\d{2})_[a-z0-9_]+$`)

// TestCaseIDs checks the registry: unique, well-formed IDs.
func TestCaseIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range CaseIDs() {
		if !idPattern.MatchString(id) {
			t.Errorf("case ID %q is not of the form caseNNN_title or Xnn_title", id)
		}
		if seen[id] {
			t.Errorf("case ID %q registered twice", id)
		}
		seen[id] = true
	}
}

// TestCatalogueCoverage checks that every [all] case of the catalogue is
// implemented and, when conformance-cases.md is available (shared/ beside
// the module root, as in CI), that the static list matches it.
func TestCatalogueCoverage(t *testing.T) {
	impl := implementedNumbers()
	for _, n := range catalogueAll {
		if !slices.Contains(impl, n) {
			t.Errorf("catalogue case %d ([all]) has no implementation", n)
		}
	}
	if !slices.IsSorted(catalogueAll) || len(slices.Compact(slices.Clone(catalogueAll))) != len(catalogueAll) {
		t.Error("catalogueAll must be sorted without duplicates")
	}

	path := cataloguePath(t)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not found: static list not compared with the catalogue", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tagged, err := parseAllCases(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if diff := cmp.Diff(tagged, catalogueAll); diff != "" {
		t.Errorf("catalogueAll differs from the [all] cases of %s (-catalogue +static):\n%s", path, diff)
	}
}

// cataloguePath returns <module root>/../shared/conformance-cases.md.
func cataloguePath(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "conformance-cases.md")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("module root (go.mod) not found")
		}
		dir = parent
	}
}

var (
	// A numbered case: `N. **Title** `[tag][tag]` — …`.
	caseLine = regexp.MustCompile("^(\\d+)\\.\\s+\\*\\*.*?\\*\\*\\s+`([^`]*)`")
	tagRe    = regexp.MustCompile(`\[([^\]]+)\]`)
)

// parseAllCases returns the sorted numbers of the catalogue's cases tagged
// [all].
func parseAllCases(f *os.File) ([]int, error) {
	var nums []int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	total := 0
	for sc.Scan() {
		m := caseLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		total++
		for _, tag := range tagRe.FindAllStringSubmatch(m[2], -1) {
			if tag[1] == "all" {
				n, err := strconv.Atoi(m[1])
				if err != nil {
					return nil, err
				}
				nums = append(nums, n)
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if total < 100 {
		return nil, fmt.Errorf("found only %d numbered cases; the format changed?", total)
	}
	slices.Sort(nums)
	return nums, nil
}
