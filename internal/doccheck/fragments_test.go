package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Fragments are the Go blocks of the docs that are not complete programs:
// a few statements (the body of some function) or a few top-level
// declarations, using names the surrounding prose introduced (ctx, client,
// g, lease, ...). TestDocFragmentsTypeCheck type-checks each of them with
// go/types against the current API:
//
//   - the block gets the imports its package names call for (knownImports:
//     syncguard, redis, postgres, time, ...); blocks of a module of their
//     own are checked in that module (firestoreImports: drivers/firestore;
//     zapImports: zapobserver);
//   - statements are wrapped in a function (returning error, or nothing);
//   - the names of the prose are declared beside it (prelude), except those
//     the block declares itself;
//   - unused variables and imports are allowed (a fragment shows a call,
//     not a whole program); every other type error fails the test, with the
//     position in the Markdown file.
//
// A block that is intentionally not Go (pseudo-code, an elided argument
// list) is marked with the HTML comment <!-- doccheck:skip --> on the line
// before its fence; the test logs every skipped block. "…" in code (outside
// comments) is not Go: write a comment or real code.

// module is the root module path.
const module = "github.com/syncguard/syncguard"

// knownImports maps the package names fragments use to import paths. A
// fragment imports those whose name it uses (name followed by a dot).
var knownImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "slog": "log/slog",
	"http": "net/http", "os": "os", "sync": "sync", "testing": "testing", "time": "time",
	"syncguard":   module,
	"driver":      module + "/driver",
	"memory":      module + "/drivers/memory",
	"redis":       module + "/drivers/redis",
	"postgres":    module + "/drivers/postgres",
	"httpmw":      module + "/httpmw",
	"pgfence":     module + "/pgfence",
	"conformance": module + "/conformance",
	"semaphore":   module + "/semaphore",
	"election":    module + "/election",
	"rueidis":     "github.com/redis/rueidis",
	"pgxpool":     "github.com/jackc/pgx/v5/pgxpool",
}

// firestoreImports are the imports of blocks of the Firestore module (those
// that use sgfirestore), which are checked in drivers/firestore.
var firestoreImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "time": "time",
	"syncguard":   module,
	"driver":      module + "/driver",
	"firestore":   "cloud.google.com/go/firestore",
	"sgfirestore": module + "/drivers/firestore",
}

// zapImports are the imports of blocks of the zapobserver module (those
// that use zap or zapobserver), which are checked in zapobserver/: zap is
// not a dependency of the core module.
var zapImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "log": "log", "slog": "log/slog",
	"os": "os", "time": "time",
	"syncguard":   module,
	"driver":      module + "/driver",
	"memory":      module + "/drivers/memory",
	"zapobserver": module + "/zapobserver",
	"zap":         "go.uber.org/zap",
	"zapcore":     "go.uber.org/zap/zapcore",
}

// usesZap reports whether a fragment uses zap or zapobserver (and so
// belongs to the zapobserver module).
var usesZap = regexp.MustCompile(`\bzap(observer|core)?\.`)

// preludeUnit declares one name of the prose. Units whose name a fragment
// declares itself are left out for it.
type preludeUnit struct {
	name string
	code string
}

// prelude: the names the docs' prose introduces, with the types the docs
// give them. g and lease are a Guard's of any fencing driver (NewFenced).
var prelude = []preludeUnit{
	{"ctx", "var ctx = context.Background()"},
	{"client", "var client rueidis.Client"},
	{"pool", "var pool *pgxpool.Pool"},
	{"g", "var g *syncguard.Guard[syncguard.Fenced]"},
	{"lease", "var lease *syncguard.Lease[syncguard.Fenced]"},
	{"lim", "var lim *syncguard.RateLimiter"},
	{"d", "var d = memory.New()"},
	{"data", "var data []byte"},
	{"fence", "var fence syncguard.Fence"},
	{"id", "var id string"},
	{"mux", "var mux = http.NewServeMux()"},
	{"payments", "var payments http.Handler"},
	{"api", "var api http.Handler"},
	{"logger", "var logger *zap.Logger"},
	{"Receipt", "type Receipt struct{ ID string }"},
	{"charge", "func charge(context.Context) (Receipt, error) { return Receipt{}, nil }"},
	{"chargeOnce", "func chargeOnce(context.Context, string, syncguard.Fence) error { return nil }"},
	{"accountID", "func accountID(*http.Request) string { return \"\" }"},
	{"userID", "func userID(*http.Request) string { return \"\" }"},
	{"deploy", "func deploy(context.Context) <-chan struct{} { return nil }"},
	{"Capabilities", "type Capabilities struct {\n\tdriver.WithFencing\n\tdriver.WithServerTime\n}\n\nfunc (Capabilities) Name() string { return \"mystore\" }"},
	{"newDriver", "func newDriver() driver.Driver[Capabilities] { return nil }"},
	{"newHarness", "func newHarness(context.Context, *testing.T) (conformance.Harness[Capabilities], error) { return nil, nil }"},
}

// fragment is a Go block that is not a complete program.
type fragment struct {
	goBlock
	skip bool // marked <!-- doccheck:skip -->
}

var skipMarker = regexp.MustCompile(`<!--\s*doccheck:skip\b[^>]*-->\s*$`)

// fragments returns the fragments of README.md and docs/*.md.
func fragments(t *testing.T, root string) []fragment {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	paths = append(paths, filepath.Join(root, "README.md"))
	var out []fragment
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(src), "\n")
		for _, b := range goBlocks(t, p) {
			if strings.HasPrefix(strings.TrimSpace(b.code), "package ") {
				continue
			}
			// b.line is the first code line (1-based); the fence is the
			// line before it, the marker the line before that.
			skip := b.line >= 3 && skipMarker.MatchString(lines[b.line-3])
			out = append(out, fragment{goBlock: b, skip: skip})
		}
	}
	return out
}

// checker type-checks fragments of one module against export data that
// `go list -export` produced for the packages they may import.
type checker struct {
	mu      sync.Mutex // the importer's package cache is not safe for concurrent use
	fset    *token.FileSet
	imports map[string]string // name → path
	exports map[string]string // import path → export data file
	imp     types.Importer
}

var (
	checkersMu sync.Mutex
	checkers   = map[string]*checker{}
)

// newChecker returns the checker of the module in dir (relative to root),
// building export data once per test binary.
func newChecker(t *testing.T, root, dir string, imports map[string]string) *checker {
	t.Helper()
	checkersMu.Lock()
	defer checkersMu.Unlock()
	if c := checkers[dir]; c != nil {
		return c
	}
	paths := make([]string, 0, len(imports))
	for _, p := range imports {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	cmd := exec.Command("go", append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}"}, paths...)...)
	cmd.Dir = filepath.Join(root, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if path, file, ok := strings.Cut(sc.Text(), "\t"); ok && file != "" {
			exports[path] = file
		}
	}
	c := &checker{fset: token.NewFileSet(), imports: imports, exports: exports}
	c.imp = importer.ForCompiler(c.fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %q (add it to knownImports)", path)
		}
		return os.Open(f)
	})
	checkers[dir] = c
	return c
}

var ellipsisOutsideComments = regexp.MustCompile(`(?m)^[^/\n]*…`)

// check type-checks one fragment and returns its hard errors (positions in
// the Markdown file), or nil.
func (c *checker) check(relFile string, line int, code string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if loc := ellipsisOutsideComments.FindStringIndex(code); loc != nil {
		n := strings.Count(code[:loc[0]], "\n")
		return []string{fmt.Sprintf("%s:%d: \"…\" is not Go: write real code or a comment", relFile, line+n)}
	}
	// Declarations or statements?
	declared, isDecl := topLevelNames("package doc\n" + code)
	var best []string
	wrappers := []struct{ head, tail string }{{"", ""}}
	if !isDecl {
		wrappers = []struct{ head, tail string }{
			{"func _() error {\n", "\nreturn nil\n}\n"},
			{"func _() {\n", "\n}\n"},
		}
	}
	for _, w := range wrappers {
		errs := c.checkWith(relFile, line, code, w.head, w.tail, declared)
		if len(errs) == 0 {
			return nil
		}
		if best == nil || len(errs) < len(best) {
			best = errs
		}
	}
	return best
}

// topLevelNames parses src as a file; on success it returns the names it
// declares at top level.
func topLevelNames(src string) (map[string]bool, bool) {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.SkipObjectResolution)
	if err != nil {
		return nil, false
	}
	names := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				names[d.Name.Name] = true
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					names[s.Name.Name] = true
				case *ast.ValueSpec:
					for _, n := range s.Names {
						names[n.Name] = true
					}
				}
			}
		}
	}
	return names, true
}

func (c *checker) checkWith(relFile string, line int, code, head, tail string, declared map[string]bool) []string {
	var frag strings.Builder
	frag.WriteString("package doc\n\n")
	frag.WriteString(c.importDecl(code))
	frag.WriteString(head)
	fmt.Fprintf(&frag, "//line %s:%d\n", relFile, line)
	frag.WriteString(code)
	frag.WriteString(tail)

	var pre strings.Builder
	pre.WriteString("package doc\n\n")
	var units []string
	for _, u := range prelude {
		if !declared[u.name] && c.canImportAll(u.code) {
			units = append(units, u.code)
		}
	}
	pre.WriteString(c.importDecl(strings.Join(units, "\n")))
	pre.WriteString(strings.Join(units, "\n\n"))
	pre.WriteString("\n")

	var errs []string
	fragFile, err := parser.ParseFile(c.fset, "fragment.go", frag.String(), parser.SkipObjectResolution)
	if err != nil {
		return []string{err.Error()}
	}
	preFile, err := parser.ParseFile(c.fset, "prelude.go", pre.String(), parser.SkipObjectResolution)
	if err != nil {
		return []string{"prelude: " + err.Error()}
	}
	conf := types.Config{
		Importer: c.imp,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok && te.Soft {
				return // unused variables and imports
			}
			errs = append(errs, err.Error())
		},
	}
	_, _ = conf.Check("doc", c.fset, []*ast.File{preFile, fragFile}, nil)
	return errs
}

// canImportAll reports whether every package code uses (of those any
// checker knows) is importable by c.
func (c *checker) canImportAll(code string) bool {
	for _, m := range []map[string]string{knownImports, firestoreImports, zapImports} {
		for name := range m {
			if _, ok := c.imports[name]; !ok && regexp.MustCompile(`\b`+name+`\.`).MatchString(code) {
				return false
			}
		}
	}
	return true
}

// importDecl imports the known packages that code uses.
func (c *checker) importDecl(code string) string {
	var b strings.Builder
	names := make([]string, 0, len(c.imports))
	for name := range c.imports {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if regexp.MustCompile(`\b` + name + `\.`).MatchString(code) {
			fmt.Fprintf(&b, "import %s %q\n", name, c.imports[name])
		}
	}
	b.WriteString("\n")
	return b.String()
}

// TestDocFragmentsTypeCheck type-checks every Go fragment of README.md and
// docs/ (see the comment at the top of this file).
func TestDocFragmentsTypeCheck(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	frags := fragments(t, root)
	if len(frags) == 0 {
		t.Fatal("no Go fragments found in docs/: the check would be vacuous")
	}
	checked, skipped := 0, 0
	for _, f := range frags {
		name := fmt.Sprintf("%s:%d", rel(root, f.file), f.line)
		if f.skip {
			skipped++
			t.Logf("%s: marked doccheck:skip", name)
			continue
		}
		c := newChecker(t, root, ".", knownImports)
		switch {
		case strings.Contains(f.code, "sgfirestore."):
			c = newChecker(t, root, "drivers/firestore", firestoreImports)
		case usesZap.MatchString(f.code):
			c = newChecker(t, root, "zapobserver", zapImports)
		}
		checked++
		for _, e := range c.check(rel(root, f.file), f.line, f.code) {
			t.Errorf("%s", e)
		}
	}
	t.Logf("%d fragments type-checked, %d marked doccheck:skip", checked, skipped)
}

// TestFragmentCheckerCatchesErrors: the checker fails a fragment that does
// not compile (the call of docs/primitives.md that once ignored redis.New's
// error) and passes one that does; so does the zapobserver module's.
func TestFragmentCheckerCatchesErrors(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	c := newChecker(t, root, ".", knownImports)
	zc := newChecker(t, root, "zapobserver", zapImports)
	tests := []struct {
		name string
		c    *checker
		code string
		want string
	}{
		{"two-value call in one-value context", c, "g := syncguard.New(redis.New(client))\n_ = g\n", "redis.New(client)"},
		{"unknown method", c, "g.Frobnicate(ctx)\n", "g.Frobnicate undefined"},
		{"wrong argument type", c, "lease, err := g.Acquire(ctx, 42)\n", "cannot use 42"},
		{"ellipsis placeholder", c, "if err != nil { … }\n", `"…" is not Go`},
		{"fine: unused variables and a return", c, "d, err := redis.New(client)\nif err != nil {\n\treturn err\n}\ng := syncguard.New(d)\n", ""},
		{"fine: declarations", c, "type Capabilities struct{ driver.WithFencing }\n\nfunc (Capabilities) Name() string { return \"x\" }\n", ""},
		{"zapobserver: wrong argument type", zc, "o := zapobserver.New(42)\n_ = o\n", "cannot use 42"},
		{"zapobserver: fine", zc, "logger, err := zap.NewDevelopment()\nif err != nil {\n\treturn err\n}\ng := syncguard.NewFenced(d, syncguard.WithObserver(zapobserver.New(logger)))\n_ = g\n", ""},
	}
	for _, tc := range tests {
		errs := tc.c.check("test.md", 1, tc.code)
		switch {
		case tc.want == "" && len(errs) > 0:
			t.Errorf("%s: %v; want no error", tc.name, errs)
		case tc.want != "" && !strings.Contains(strings.Join(errs, "\n"), tc.want):
			t.Errorf("%s: %v; want an error containing %q", tc.name, errs, tc.want)
		}
	}
}
