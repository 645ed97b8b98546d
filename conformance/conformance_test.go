package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The suite runs against drivers/memory in that package's own test
// (drivers/memory/conformance_test.go), which reaches the driver's state for
// every optional hook; reference_test.go runs it against a reference driver.

var idPattern = regexp.MustCompile(`^(case\d{3}(_fix)?|[FRGPEWK]\d{2})_[a-z0-9_]+$`)

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

// TestCatalogueCoverage checks that every case of the suite is listed in
// docs/contract.md's "Conformance cases" table, under the section of the
// contract it checks, and that the table names no case the suite lacks.
// The catalogue's [all] cases (catalogueAll) must all be implemented.
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
	b, err := os.ReadFile(filepath.Join("..", "docs", "contract.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := tableCaseIDs(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(CaseIDs()))
	if diff := cmp.Diff(want, listed); diff != "" {
		t.Errorf("case IDs of the suite vs docs/contract.md's table (-suite +doc):\n%s", diff)
	}
}

// tableCaseIDs returns the sorted backticked case IDs of the table in the
// "## Conformance cases" section of the contract.
func tableCaseIDs(doc string) ([]string, error) {
	_, sec, ok := strings.Cut(doc, "\n## Conformance cases\n")
	if !ok {
		return nil, errors.New(`no "## Conformance cases" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var ids []string
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "| [") {
			continue
		}
		for _, m := range caseIDRe.FindAllStringSubmatch(line, -1) {
			ids = append(ids, m[1])
		}
	}
	if len(ids) < 100 {
		return nil, fmt.Errorf("found only %d case IDs in the table; the format changed?", len(ids))
	}
	slices.Sort(ids)
	return ids, nil
}

var caseIDRe = regexp.MustCompile("`((?:case\\d{3}|[RGPEWFK]\\d{2})\\w*)`")
