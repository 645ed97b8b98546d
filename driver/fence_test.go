package driver

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFenceFormatter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		n    int64
		want string
	}{
		{"case46/one", 1, "000000000000001"},
		{"case46/42", 42, "000000000000042"},
		{"case46/123456789", 123456789, "000000123456789"},
		{"case46/zero", 0, "000000000000000"},
		{"case46/max_15_digits", 999999999999999, "999999999999999"},
		{"case46/fence_max", int64(FenceMax), "900000000000000"},
		{"case46/fence_warn", int64(FenceWarn), "600000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := FormatFence(tt.n)
			if err != nil {
				t.Fatalf("FormatFence(%d) error: %v", tt.n, err)
			}
			if got != tt.want {
				t.Errorf("FormatFence(%d) = %q, want %q", tt.n, got, tt.want)
			}
			if s := Fence(tt.n).String(); s != tt.want {
				t.Errorf("Fence(%d).String() = %q, want %q", tt.n, s, tt.want)
			}
			if len(got) != FenceDigits {
				t.Errorf("len = %d, want %d", len(got), FenceDigits)
			}
		})
	}

	errTests := []struct {
		name string
		n    int64
		msg  string
	}{
		{"case46/minus_one", -1, "non-negative"},
		{"case46/min_int64", math.MinInt64, "non-negative"},
		{"case46/ten_to_15", 1_000_000_000_000_000, "exceeds 15-digit limit"},
		{"case46/max_int64", math.MaxInt64, "exceeds 15-digit limit"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := FormatFence(tt.n)
			coreRequireCode(t, err, InvalidArgument, tt.msg)
			if got != "" {
				t.Errorf("FormatFence(%d) = %q with an error", tt.n, got)
			}
		})
	}

	t.Run("case46/string_beyond_15_digits_in_full", func(t *testing.T) {
		t.Parallel()
		if got, want := Fence(1_000_000_000_000_000).String(), "1000000000000000"; got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		if got, want := Fence(math.MaxUint64).String(), strconv.FormatUint(math.MaxUint64, 10); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	})

	t.Run("case46/sorting", func(t *testing.T) {
		t.Parallel()
		nums := []int64{42, 1, 999, 100, 5}
		var strs []string
		var fences []Fence
		for _, n := range nums {
			s, err := FormatFence(n)
			if err != nil {
				t.Fatal(err)
			}
			strs = append(strs, s)
			fences = append(fences, Fence(n))
		}
		slices.Sort(strs)
		slices.Sort(fences)
		want := []string{"000000000000001", "000000000000005", "000000000000042", "000000000000100", "000000000000999"}
		if diff := cmp.Diff(want, strs); diff != "" {
			t.Errorf("sorted strings (-want +got):\n%s", diff)
		}
		var fromFences []string
		for _, f := range fences {
			fromFences = append(fromFences, f.String())
		}
		if diff := cmp.Diff(want, fromFences); diff != "" {
			t.Errorf("numeric order vs string order (-want +got):\n%s", diff)
		}
	})
}

func TestFenceParser(t *testing.T) {
	t.Parallel()
	valid := []struct {
		name string
		in   string
		want Fence
	}{
		{"case47/one", "000000000000001", 1},
		{"case47/zero", "000000000000000", 0},
		{"case47/max", "999999999999999", 999999999999999},
		{"case47/fence_max", "900000000000000", FenceMax},
		{"case47/fence_warn", "600000000000000", FenceWarn},
		{"case47/mixed", "000000123456789", 123456789},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFence(tt.in)
			if err != nil {
				t.Fatalf("ParseFence(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseFence(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("round trip: %q -> %q", tt.in, got.String())
			}
		})
	}

	invalid := []struct{ name, in string }{
		{"case47/empty", ""},
		{"case47/one_digit", "1"},
		{"case47/14_digits", strings.Repeat("1", 14)},
		{"case47/16_digits", strings.Repeat("1", 16)},
		{"case47/17_digits", strings.Repeat("1", 17)},
		{"case47/19_digits", strings.Repeat("9", 19)},
		{"case47/20_digits_overflow", strings.Repeat("9", 20)},
		{"case47/letters", "abc000000000001"},
		{"case47/leading_space", " 00000000000001"},
		{"case47/trailing_space", "00000000000001 "},
		{"case47/leading_space_16", " 000000000000001"},
		{"case47/plus_sign", "+00000000000001"},
		{"case47/minus_sign", "-00000000000001"},
		{"case47/hex", "0x0000000000001"},
		{"case47/underscore", "000_00000000001"},
		{"case47/arabic_indic_digit", "0000000000000\u0661"},
		{"case47/fullwidth_digit", "000000000000\uff11"},
		{"case47/newline", "00000000000001\n"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFence(tt.in)
			coreRequireCode(t, err, InvalidArgument, "invalid fence format")
			if got != 0 {
				t.Errorf("ParseFence(%q) = %d with an error", tt.in, got)
			}
		})
	}

	t.Run("case47/powers_of_ten_sort_ascending", func(t *testing.T) {
		t.Parallel()
		var want []string
		n := int64(1)
		for i := 0; i <= 9; i++ {
			s, err := FormatFence(n)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, s)
			n *= 10
		}
		want = append(want, "999999999999999")
		got := slices.Clone(want)
		slices.Reverse(got)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("string sort differs from numeric order (-want +got):\n%s", diff)
		}
		for i := 1; i < len(want); i++ {
			a, _ := ParseFence(want[i-1])
			b, _ := ParseFence(want[i])
			if a >= b {
				t.Errorf("%s >= %s numerically", want[i-1], want[i])
			}
		}
	})
}

func TestCheckNewFence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		next     int64
		want     Fence
		wantWarn bool
		errMsg   string // non-empty: Internal error expected containing it
	}{
		{name: "case43/first", next: 1, want: 1},
		{name: "case45/below_warn", next: int64(FenceWarn) - 1, want: FenceWarn - 1},
		{name: "case45/warn_threshold_not_above", next: int64(FenceWarn), want: FenceWarn},
		{name: "case45/above_warn", next: int64(FenceWarn) + 1, want: FenceWarn + 1, wantWarn: true},
		{name: "case45/just_below_max", next: int64(FenceMax) - 1, want: FenceMax - 1, wantWarn: true},
		{name: "case45/fence_max_allowed", next: int64(FenceMax), want: FenceMax, wantWarn: true},
		{name: "case45/overflow", next: int64(FenceMax) + 1, errMsg: "overflow"},
		{name: "case45/overflow_15_digit_max", next: 999999999999999, errMsg: "overflow"},
		{name: "case45/overflow_max_int64", next: math.MaxInt64, errMsg: "overflow"},
		{name: "case45/zero", next: 0, errMsg: "not positive"},
		{name: "case45/negative", next: -1, errMsg: "not positive"},
		{name: "case45/min_int64", next: math.MinInt64, errMsg: "not positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, warn, err := CheckNewFence(tt.next)
			if tt.errMsg != "" {
				coreRequireCode(t, err, Internal, tt.errMsg)
				if f != 0 || warn {
					t.Errorf("CheckNewFence(%d) = (%d, %v) with an error", tt.next, f, warn)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckNewFence(%d) error: %v", tt.next, err)
			}
			if f != tt.want || warn != tt.wantWarn {
				t.Errorf("CheckNewFence(%d) = (%d, %v), want (%d, %v)", tt.next, f, warn, tt.want, tt.wantWarn)
			}
		})
	}
}

func TestFenceFloor(t *testing.T) {
	t.Parallel()
	epochUs := int64(FenceEpochMs) * 1000
	tests := []struct {
		name   string
		unixUs int64
		want   Fence
	}{
		{"before the epoch", epochUs - 1, 0},
		{"at the epoch", epochUs, 0},
		{"9 µs after", epochUs + 9, 0},
		{"10 µs after", epochUs + 10, 1},
		{"1 ms after", epochUs + 1000, FencePerMs},
		{"2027-01-01", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), 6_307_200_000_000},
		{"2215-01-01 is under FenceWarn", time.Date(2215, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), 599_572_800_000_000},
	}
	for _, tc := range tests {
		if got := FenceFloor(tc.unixUs); got != tc.want {
			t.Errorf("%s: FenceFloor(%d) = %d; want %d", tc.name, tc.unixUs, got, tc.want)
		}
	}
	if f := FenceFloor(time.Date(2310, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()); f > FenceMax {
		t.Errorf("the floor passes FenceMax before 2310: %v", f)
	}
}

func TestFenceKeepMs(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	floor := FenceFloor(now)
	tests := []struct {
		name string
		f    Fence
		want int64
	}{
		{"below the floor", floor - 1000, FenceMarginMs},
		{"at the floor", floor, FenceMarginMs},
		{"1 unit ahead", floor + 1, FenceMarginMs + 1},
		{"one second ahead", floor + 1000*FencePerMs, FenceMarginMs + 1000},
	}
	for _, tc := range tests {
		if got := FenceKeepMs(tc.f, now); got != tc.want {
			t.Errorf("%s: FenceKeepMs = %d; want %d", tc.name, got, tc.want)
		}
		// The promise: once the kept time has passed, the floor has passed
		// f by the margin.
		later := now + FenceKeepMs(tc.f, now)*1000
		if FenceFloor(later) < tc.f+Fence(FenceMarginMs*FencePerMs) {
			t.Errorf("%s: floor after the keep = %d; want ≥ f + margin = %d", tc.name, FenceFloor(later), tc.f+Fence(FenceMarginMs*FencePerMs))
		}
	}
}
