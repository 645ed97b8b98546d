package driver

import (
	"bufio"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIsLive(t *testing.T) {
	t.Parallel()
	const now = int64(1_000_000)
	tests := []struct {
		name      string
		expiresAt int64
		want      bool
	}{
		{"case86/now-500_live", now - 500, true},
		{"case86/now-1000_not", now - 1000, false},
		{"case86/now-999_live", now - 999, true},
		{"case86/now-1001_not", now - 1001, false},
		{"case86/now_live", now, true},
		{"case86/now+5000_live", now + 5000, true},
		{"case86/now-10000_not", now - 10_000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsLive(tt.expiresAt, now); got != tt.want {
				t.Errorf("IsLive(%d, %d) = %v, want %v", tt.expiresAt, now, got, tt.want)
			}
		})
	}
}

func TestConstants(t *testing.T) {
	t.Parallel()
	got := map[string]int64{
		"Tolerance":      int64(Tolerance),
		"ToleranceMs":    ToleranceMs,
		"CleanupGuardMs": CleanupGuardMs,
		"DefaultTTL":     int64(DefaultTTL),
		"MaxKeyBytes":    MaxKeyBytes,
		"LockIDLen":      LockIDLen,
		"FenceDigits":    FenceDigits,
		"FenceMax":       int64(FenceMax),
		"FenceWarn":      int64(FenceWarn),
	}
	want := map[string]int64{
		"Tolerance":      int64(time.Second),
		"ToleranceMs":    1000,
		"CleanupGuardMs": 2000,
		"DefaultTTL":     int64(30 * time.Second),
		"MaxKeyBytes":    512,
		"LockIDLen":      22,
		"FenceDigits":    15,
		"FenceMax":       900_000_000_000_000,
		"FenceWarn":      600_000_000_000_000,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("case88/constants (-want +got):\n%s", diff)
	}
}

func TestTTLMillis(t *testing.T) {
	t.Parallel()
	const msg = "ttlMs must be a positive integer"
	tests := []struct {
		name string
		ttl  time.Duration
		want int64
		msg  string // non-empty: InvalidArgument expected
	}{
		{name: "case70/zero", ttl: 0, msg: msg},
		{name: "case70/minus_1ms", ttl: -time.Millisecond, msg: msg},
		{name: "case70/minus_1ns", ttl: -1, msg: msg},
		{name: "case70/1.5ms", ttl: 1500 * time.Microsecond, msg: msg},
		{name: "case70/1ns", ttl: 1, msg: msg},
		{name: "case70/999us", ttl: 999 * time.Microsecond, msg: msg},
		{name: "case70/1ms", ttl: time.Millisecond, want: 1},
		{name: "case70/100ms", ttl: 100 * time.Millisecond, want: 100},
		{name: "case70/1s", ttl: time.Second, want: 1000},
		{name: "case70/30s", ttl: 30 * time.Second, want: 30_000},
		{name: "case70/1h", ttl: time.Hour, want: 3_600_000},
		{name: "case70/100_years", ttl: 100 * 365 * 24 * time.Hour, want: 100 * 365 * 24 * 3_600_000},
		{name: "case70/100_years_plus_1ms", ttl: 100*365*24*time.Hour + time.Millisecond, msg: "exceeds maximum"},
		{name: "case70/absurd", ttl: time.Duration(math.MaxInt64 / int64(time.Millisecond) * int64(time.Millisecond)), msg: "exceeds maximum"},
		{name: "case70/min_duration", ttl: math.MinInt64, msg: msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := TTLMillis(tt.ttl)
			if tt.msg != "" {
				coreRequireCode(t, err, InvalidArgument, tt.msg)
				if got != 0 {
					t.Errorf("TTLMillis(%v) = %d with an error", tt.ttl, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("TTLMillis(%v) error: %v", tt.ttl, err)
			}
			if got != tt.want {
				t.Errorf("TTLMillis(%v) = %d, want %d", tt.ttl, got, tt.want)
			}
		})
	}
}

func TestRecordTTLMillis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ttl     time.Duration
		want    int64
		wantErr bool
	}{
		{name: "zero_means_no_expiry", ttl: 0, want: 0},
		{name: "1s", ttl: time.Second, want: 1000},
		{name: "negative", ttl: -time.Second, wantErr: true},
		{name: "fractional_ms", ttl: 1500 * time.Microsecond, wantErr: true},
		{name: "absurd", ttl: math.MaxInt64, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RecordTTLMillis(tt.ttl)
			if tt.wantErr {
				coreRequireCode(t, err, InvalidArgument, "ttlMs")
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("RecordTTLMillis(%v) = (%d, %v), want (%d, nil)", tt.ttl, got, err, tt.want)
			}
		})
	}
}

func TestValidateRateLimit(t *testing.T) {
	t.Parallel()
	ok := RateLimit{Limit: 10, Period: time.Second, Burst: 5}
	tests := []struct {
		name string
		lim  RateLimit
		n    int
		msg  string // "" means valid
	}{
		{name: "valid", lim: ok, n: 1},
		{name: "valid_inspect_n0", lim: ok, n: 0},
		{name: "valid_n_above_burst", lim: ok, n: 100},
		{name: "valid_1us_interval", lim: RateLimit{Limit: 1_000_000, Period: time.Second, Burst: 1}, n: 1},
		{name: "valid_max_sizes", lim: RateLimit{Limit: 1, Period: time.Second, Burst: 1 << 30}, n: 1 << 30},
		{name: "zero_limit", lim: RateLimit{Limit: 0, Period: time.Second, Burst: 1}, msg: "limit must be positive"},
		{name: "negative_limit", lim: RateLimit{Limit: -1, Period: time.Second, Burst: 1}, msg: "limit must be positive"},
		{name: "zero_period", lim: RateLimit{Limit: 1, Period: 0, Burst: 1}, msg: "period must be positive"},
		{name: "negative_period", lim: RateLimit{Limit: 1, Period: -time.Second, Burst: 1}, msg: "period must be positive"},
		{name: "zero_burst", lim: RateLimit{Limit: 1, Period: time.Second, Burst: 0}, msg: "burst must be positive"},
		{name: "negative_burst", lim: RateLimit{Limit: 1, Period: time.Second, Burst: -3}, msg: "burst must be positive"},
		{name: "sub_microsecond_interval", lim: RateLimit{Limit: 1_000_001, Period: time.Second, Burst: 1}, msg: "emission interval"},
		{name: "limit_above_period_ns", lim: RateLimit{Limit: math.MaxInt, Period: time.Second, Burst: 1}, msg: "emission interval"},
		{name: "negative_n", lim: ok, n: -1, msg: "must not be negative"},
		{name: "huge_n", lim: ok, n: 1<<30 + 1, msg: "too large"},
		{name: "huge_burst", lim: RateLimit{Limit: 1, Period: time.Second, Burst: 1<<30 + 1}, n: 1, msg: "too large"},
		{name: "valid_span_edge", lim: RateLimit{Limit: 1, Period: 1 << 31, Burst: 1 << 30}, n: 1 << 30},
		{name: "span_n", lim: RateLimit{Limit: 1, Period: 1 << 40, Burst: 1}, n: 1 << 22, msg: "supported range"},
		{name: "span_burst", lim: RateLimit{Limit: 1, Period: 1 << 40, Burst: 1 << 22}, n: 0, msg: "supported range"},
		{name: "span_max_period", lim: RateLimit{Limit: 1, Period: math.MaxInt64, Burst: 1}, n: 0, msg: "supported range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateRateLimit(tt.lim, tt.n)
			if tt.msg == "" {
				if err != nil {
					t.Errorf("ValidateRateLimit(%+v, %d) = %v", tt.lim, tt.n, err)
				}
				return
			}
			coreRequireCode(t, err, InvalidArgument, tt.msg)
		})
	}
}

func TestUnixMs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(1640995200, 123456000), 1640995200123},
		{time.Unix(1640995200, 0), 1640995200000},
		{time.Unix(1640995200, 999999000), 1640995200999},
		{time.Unix(0, 0), 0},
	}
	for _, tt := range tests {
		if got := UnixMs(tt.t); got != tt.want {
			t.Errorf("UnixMs(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
}

// Case 88: one tolerance constant. The detector below looks, line by line
// and with comments stripped, for a 1000 ms tolerance written as a literal
// instead of using [Tolerance]/[ToleranceMs]:
//
//  1. an identifier containing "toler" (or named tol/tolMs/tol_ms) assigned,
//     defined or keyed to 1000, 1_000, 1e3, 1000*time.Millisecond or
//     time.Second (Go `tolerance := 1000`, `Tolerance: 1000`, Lua
//     `local tolerance = 1000`);
//  2. a line mentioning "toler" that adds or subtracts a literal 1000, or
//     spells 1000 * time.Millisecond;
//  3. the liveness predicate or the Redis PX written with a literal: a
//     now/exp/expiresAt/expiry/ttl identifier (optionally with an At/Ms
//     suffix), UnixMilli(), a Lua ARGV[n] or an SQL $n followed by ± 1000:
//     `now - 1000`, `nowMs-1000`, `expiresAt + 1000`, `ttl + 1000`,
//     `ARGV[3] - 1000`, `$2 - 1000`.
//
// Unrelated uses of 1000 (ms/µs conversions such as `sec*1000 +
// floor(us/1000)`, `/1000.0`, sizes, counts) are not flagged. Test files,
// hidden directories, vendor and testdata are skipped; liveness.go at the
// module root, which defines the constant, is the only file allowed to match.
var toleranceLiteralREs = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(?:\w*toler\w*|\btol(?:_?ms)?)\s*(?::=|=|:)\s*(?:[\w.]+\()?\s*(?:1_?000(?:\.0*)?\b|1e3\b|(?:1\s*\*\s*)?time\.Second\b)`),
	regexp.MustCompile(`(?i)toler.*(?:[-+]\s*1_?000\b|\b1_?000\s*[-+]|\b1_?000\s*\*\s*time\.Millisecond)`),
	regexp.MustCompile(`(?i)\b1_?000\s*\*\s*time\.Millisecond.*toler`),
	regexp.MustCompile(`(?i)(?:\b\w*(?:now|exp|expires?|expiry|ttl)(?:_?at)?(?:_?ms|_?millis)?|UnixMilli\(\)|ARGV\[\d+\]\)?|\$\d+)\s*[-+]\s*1_?000\b`),
}

// stripComments removes // and -- line comments and /* */ and --[[ ]] block
// comments (state carried across lines in *inBlock). It is deliberately
// simple: comment markers inside string literals also start a comment, which
// can only hide code from the check, never flag a comment.
func stripComments(line string, inBlock *string) string {
	var out strings.Builder
	for len(line) > 0 {
		if *inBlock != "" {
			i := strings.Index(line, *inBlock)
			if i < 0 {
				return out.String()
			}
			line = line[i+len(*inBlock):]
			*inBlock = ""
			continue
		}
		i := strings.IndexAny(line, "/-")
		if i < 0 {
			out.WriteString(line)
			break
		}
		rest := line[i:]
		switch {
		case strings.HasPrefix(rest, "//"):
			out.WriteString(line[:i])
			return out.String()
		case strings.HasPrefix(rest, "/*"):
			out.WriteString(line[:i])
			line, *inBlock = rest[2:], "*/"
		case strings.HasPrefix(rest, "--[["):
			out.WriteString(line[:i])
			line, *inBlock = rest[4:], "]]"
		case strings.HasPrefix(rest, "--") && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			out.WriteString(line[:i])
			return out.String()
		default:
			out.WriteString(line[:i+1])
			line = line[i+1:]
		}
	}
	return out.String()
}

func toleranceLiteral(code string) bool {
	for _, re := range toleranceLiteralREs {
		if re.MatchString(code) {
			return true
		}
	}
	return false
}

func TestToleranceLiteralDetector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want bool
	}{
		{"const Tolerance = 1000 * time.Millisecond", true},
		{"tolerance := 1000", true},
		{"lockTolerance = int64(1000)", true},
		{"\tToleranceMs: 1000,", true},
		{"local tolerance = 1000", true},
		{"local tol = 1e3", true},
		{"var tolMs = 1_000", true},
		{"tolerance := time.Second", true},
		{"px := ttlMs + 1000 // tolerance", true},
		{"if exp > now - 1000 then", true},
		{"return expiresAtMs > nowMs-1000", true},
		{"local live = tonumber(ARGV[3]) - 1000 < exp", true},
		{"WHERE expires_at_ms > $2 - 1000", true},
		{"grace := syncguard.Tolerance + 1000*time.Millisecond", true},
		{"const toleranceGrace = ToleranceMs + 1000", true},
		// Negatives.
		{"return expiresAtMs > nowMs-ToleranceMs", false},
		{"px := ttlMs + syncguard.ToleranceMs", false},
		{"local now = t[1] * 1000 + math.floor(t[2] / 1000)", false},
		{"ms := sec*1000 + us/1000", false},
		{"total := 1000", false},
		{"maxBatch = 1000", false},
		{"// tolerance = 1000 in upstream", false},
		{"-- tolerance is ARGV[3], upstream hard-coded 1000", false},
		{"  /* tolerance := 1000 */ x := 1", false},
		{"d := time.Duration(ToleranceMs) * time.Millisecond", false},
		{"cleanupGuard := 2000", false},
		{"timeout := 1000 * time.Millisecond", false},
		{"expected := n + 1000", false},
		{"lockExpiresAtMs + 1000", true},
		{"expires_at_ms - 1000", true},
		{"time.Now().UnixMilli() - 1000", true},
		{"i-- // tolerance = 1000", false},
	}
	for _, tt := range tests {
		t.Run("case88/"+tt.line, func(t *testing.T) {
			t.Parallel()
			block := ""
			if got := toleranceLiteral(stripComments(tt.line, &block)); got != tt.want {
				t.Errorf("detector(%q) = %v, want %v", tt.line, got, tt.want)
			}
		})
	}
	t.Run("case88/block_comment_spans_lines", func(t *testing.T) {
		t.Parallel()
		block := ""
		lines := []string{"x := 1 /* start", "tolerance = 1000", "end */ tolerance := 1000"}
		var got []bool
		for _, l := range lines {
			got = append(got, toleranceLiteral(stripComments(l, &block)))
		}
		if diff := cmp.Diff([]bool{false, false, true}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// coreModuleRoot walks up from the working directory (the package directory
// under go test) to the directory holding go.mod.
func coreModuleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// scanToleranceLiterals returns "path:line: text" for every flagged line of
// file.
func scanToleranceLiterals(t *testing.T, path, rel string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hits []string
	block := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if toleranceLiteral(stripComments(sc.Text(), &block)) {
			hits = append(hits, rel+":"+strconv.Itoa(n)+": "+strings.TrimSpace(sc.Text()))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return hits
}

func TestSingleToleranceConstant(t *testing.T) {
	t.Parallel()
	root := coreModuleRoot(t)

	t.Run("case88/liveness_defines_it", func(t *testing.T) {
		t.Parallel()
		hits := scanToleranceLiterals(t, filepath.Join(root, "driver", "liveness.go"), "driver/liveness.go")
		if len(hits) != 1 || !strings.Contains(hits[0], "Tolerance = 1000 * time.Millisecond") {
			t.Errorf("liveness.go: want exactly the Tolerance definition flagged, got %q", hits)
		}
	})

	t.Run("case88/no_other_literal", func(t *testing.T) {
		t.Parallel()
		var hits []string
		scanned := 0
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			name := d.Name()
			if d.IsDir() {
				if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "vendor" || name == "testdata" || name == "node_modules") {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasSuffix(name, "_test.go") || !(strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".lua")) {
				return nil
			}
			if rel == "driver/liveness.go" {
				return nil
			}
			scanned++
			hits = append(hits, scanToleranceLiterals(t, path, filepath.ToSlash(rel))...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if scanned == 0 {
			t.Fatal("no source files scanned; is the module root right?")
		}
		t.Logf("scanned %d non-test .go/.lua files under %s", scanned, root)
		for _, h := range hits {
			t.Errorf("tolerance literal outside liveness.go (use syncguard.Tolerance/ToleranceMs or pass it to the script as an argument):\n\t%s", h)
		}
	})
}
