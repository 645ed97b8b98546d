package history

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Permit histories (docs/contract.md#permits) reuse Op, Input and Output:
// Acquire is AcquirePermit (Input.Limit is the caller's permit count,
// Output.LockID the permit ID), Release is ReleasePermit and Extend is
// ExtendPermit, each on Input.Key. They are checked with PermitModel
// (CheckPermits), never mixed with lock operations.

// PermitSlots is the most permits the permit model keeps per key, so the
// largest permit count (Input.Limit) it checks.
const PermitSlots = 8

// Permit is one permit of the permit model.
type Permit struct {
	// ID is the permit ID, or Anon for a permit taken by an acquisition
	// whose outcome is unknown (nobody can release or extend it, and the
	// driver may release it on its own at any moment).
	ID string
	// ExpLo and ExpHi bound the permit's expiry (authority Unix ms).
	ExpLo, ExpHi int64
	// Limit is the permit count it was acquired with.
	Limit int
}

// PermitState is the permit model's state of one key. It is a comparable
// value: Permits[:N] in a canonical order.
//
// The state may hold permits that have already expired (but never one that
// was released): a permit is dropped only when some result proves it gone.
// Such extra permits make the model more lenient, never stricter, because
// an expired permit is never "surely live" (see below).
type PermitState struct {
	// LastFence is the largest fence known to have been handed out.
	LastFence uint64
	N         int
	Permits   [PermitSlots]Permit
}

func (s PermitState) list() []Permit { return s.Permits[:s.N] }

func newPermitState(lastFence uint64, ps []Permit) PermitState {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Permit) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.ExpLo, b.ExpLo), cmp.Compare(a.ExpHi, b.ExpHi), cmp.Compare(a.Limit, b.Limit))
	})
	s := PermitState{LastFence: lastFence, N: len(ps)}
	copy(s.Permits[:], ps)
	return s
}

// mayLive: p may be live at some point of [c, r] (at c, the earliest).
func (p Permit) mayLive(c int64) bool {
	return p.ID == Anon || c < sat(p.ExpHi, ToleranceMs+ClockMargin)
}

// surelyLive: p is live at r (so at every point of [c, r]) whatever the
// clocks: it cannot have expired, and it was not released (the model drops
// released permits). An Anon permit is never surely live.
func (p Permit) surelyLive(r int64) bool {
	return p.ID != Anon && r < p.ExpLo+ToleranceMs-ClockMargin
}

func (s PermitState) find(id string) int {
	return slices.IndexFunc(s.list(), func(p Permit) bool { return p.ID == id })
}

func (s PermitState) without(i int) PermitState {
	return newPermitState(s.LastFence, slices.Delete(slices.Clone(s.list()), i, i+1))
}

// effective is the permit count in force among ps for a caller's limit.
func effective(limit int, ps []Permit) int {
	for _, p := range ps {
		limit = min(limit, p.Limit)
	}
	return limit
}

// grants returns every state after a grant of p with limit at a point ≤ r
// (r = Infinity for an acquisition of unknown outcome). The permits surely
// live at r were live then; of the others, any subset may have been. The
// store granted only if fewer than the effective limit were live, so each
// maximal subset that allows the grant gives one state; permits outside it
// had expired (or, for Anon, been released by the driver) and are dropped.
// Maximal subsets suffice: a state with extra expired permits accepts
// whatever the smaller one does.
func (s PermitState) grants(limit int, r int64, p Permit, lastFence uint64) []PermitState {
	var sure, maybe []Permit
	for _, q := range s.list() {
		if q.surelyLive(r) {
			sure = append(sure, q)
		} else {
			maybe = append(maybe, q)
		}
	}
	if len(sure) >= effective(limit, sure) {
		return nil
	}
	fits := func(mask int) bool {
		kept := slices.Clone(sure)
		for i, q := range maybe {
			if mask&(1<<i) != 0 {
				kept = append(kept, q)
			}
		}
		return len(kept) < effective(limit, kept)
	}
	var res []PermitState
	full := 1<<len(maybe) - 1
	for mask := full; mask >= 0; mask-- {
		if !fits(mask) {
			continue
		}
		maximal := true
		for i := range maybe {
			if mask&(1<<i) == 0 && fits(mask|1<<i) {
				maximal = false
				break
			}
		}
		if !maximal {
			continue
		}
		kept := append(slices.Clone(sure), p)
		for i, q := range maybe {
			if mask&(1<<i) != 0 {
				kept = append(kept, q)
			}
		}
		n := newPermitState(lastFence, kept)
		if !slices.Contains(res, n) {
			res = append(res, n)
		}
	}
	return res
}

// permitStep returns every state the key can be in after the operation.
func permitStep(s PermitState, in Input, out Output) []PermitState {
	c, r := in.CallMs, out.ReturnMs
	switch in.Kind {
	case Acquire:
		if in.Limit < 1 || in.Limit > PermitSlots {
			return nil
		}
		if out.Unknown {
			// Its expiry does not matter (an Anon permit may live or be gone
			// at any point); fixed bounds let equal states merge.
			anon := Permit{ID: Anon, ExpHi: math.MaxInt64, Limit: in.Limit}
			return append([]PermitState{s}, s.grants(in.Limit, math.MaxInt64, anon, s.LastFence)...)
		}
		if !out.OK { // full
			var live []Permit
			for _, p := range s.list() {
				if p.mayLive(c) {
					live = append(live, p)
				}
			}
			if len(live) >= effective(in.Limit, live) {
				return []PermitState{s}
			}
			return nil
		}
		if out.Fence <= s.LastFence || !expOK(out.ExpMs, c, r, in.TTLMs) || out.LockID == "" || out.LockID == Anon || s.find(out.LockID) >= 0 {
			return nil
		}
		return s.grants(in.Limit, r, Permit{ID: out.LockID, ExpLo: out.ExpMs, ExpHi: out.ExpMs, Limit: in.Limit}, out.Fence)
	case Release, Extend:
		i := s.find(in.LockID)
		if i < 0 {
			// Never granted, released or proved expired: only a failure
			// (or a call of unknown outcome, which then did nothing).
			if out.Unknown || !out.OK {
				return []PermitState{s}
			}
			return nil
		}
		p := s.Permits[i]
		switch {
		case out.Unknown && !p.mayLive(c):
			return []PermitState{s}
		case out.Unknown && in.Kind == Release:
			return []PermitState{s, s.without(i)}
		case out.Unknown: // extend: the old expiry may still hold, or a later one
			ps := slices.Clone(s.list())
			ps[i].ExpLo, ps[i].ExpHi = min(p.ExpLo, c+in.TTLMs-ClockMargin), math.MaxInt64
			return []PermitState{s, newPermitState(s.LastFence, ps)}
		case out.OK && !p.mayLive(c):
			return nil
		case out.OK && in.Kind == Release:
			return []PermitState{s.without(i)}
		case out.OK:
			if !expOK(out.ExpMs, c, r, in.TTLMs) {
				return nil
			}
			ps := slices.Clone(s.list())
			ps[i].ExpLo, ps[i].ExpHi = out.ExpMs, out.ExpMs
			return []PermitState{newPermitState(s.LastFence, ps)}
		case p.surelyLive(r):
			return nil // a live permit's release or extend failed
		default:
			// It had expired by r, and expired permits stay gone.
			return []PermitState{s.without(i)}
		}
	}
	return nil
}

// PermitModel is the porcupine model of permits, per key: at most the
// effective limit (the smallest of the caller's and the live permits'
// limits) of live permits at a time, every granted fence greater than
// every fence granted before for the key, and the release or extension of
// a live permit succeeding, of an expired or unknown one failing. It is
// time-aware as Model is: liveness is judged at some point of the call's
// interval, widened by ClockMargin, with the contract's tolerance; an
// operation of unknown outcome (Return Infinity) may take effect at any
// point after its call, or never. Failover and Wipe events are not
// supported (a history with them is illegal).
func PermitModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partition,
		Init:      func() []any { return []any{PermitState{}} },
		Step: func(state, input, output any) []any {
			next := permitStep(state.(PermitState), input.(Input), output.(Output))
			res := make([]any, len(next))
			for i, n := range next {
				res[i] = n
			}
			return res
		},
		Equal: func(a, b any) bool { return a.(PermitState) == b.(PermitState) },
		Hash: func(state any) uint64 {
			s := state.(PermitState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%d", s.LastFence)
			for _, p := range s.list() {
				fmt.Fprintf(h, "|%s,%d,%d,%d", p.ID, p.ExpLo, p.ExpHi, p.Limit)
			}
			return h.Sum64()
		},
		DescribeOperation: describePermitOp,
		DescribeState:     func(state any) string { return describePermitState(state.(PermitState)) },
	}
	return nm.ToModel()
}

// CheckPermits checks a permit history against PermitModel within
// timeout, with the direct check that no fence of a key is handed out
// twice; as Check, it writes the visualisation and the raw history under
// dir when the history is not linearizable.
func CheckPermits(ops []Op, timeout time.Duration, dir, name string) Result {
	return check(PermitModel(), directChecks, ops, timeout, dir, name)
}

// PermitStats counts the outcomes of a permit history.
type PermitStats struct {
	Ops, Keys, Unknown int
	Granted, Full      int // acquisitions that got a permit / found the key full
	Released, Extended int // successful releases and extensions
	// ReleaseFailed and ExtendFailed count releases and extensions that
	// found the permit expired (or unknown).
	ReleaseFailed, ExtendFailed int
}

// SummarisePermits counts a permit history.
func SummarisePermits(ops []Op) PermitStats {
	var s PermitStats
	keys := map[string]bool{}
	for _, o := range ops {
		s.Ops++
		keys[o.In.Key] = true
		if o.Out.Unknown {
			s.Unknown++
			continue
		}
		switch {
		case o.In.Kind == Acquire && o.Out.OK:
			s.Granted++
		case o.In.Kind == Acquire:
			s.Full++
		case o.In.Kind == Release && o.Out.OK:
			s.Released++
		case o.In.Kind == Release:
			s.ReleaseFailed++
		case o.In.Kind == Extend && o.Out.OK:
			s.Extended++
		case o.In.Kind == Extend:
			s.ExtendFailed++
		}
	}
	s.Keys = len(keys)
	return s
}

// String summarises the counts on one line.
func (s PermitStats) String() string {
	return fmt.Sprintf("%d permit ops on %d keys: %d granted, %d full, %d released, %d extended, %d releases and %d extensions refused (expired), %d unknown outcomes",
		s.Ops, s.Keys, s.Granted, s.Full, s.Released, s.Extended, s.ReleaseFailed, s.ExtendFailed, s.Unknown)
}

func describePermitOp(input, output any) string {
	in, out := input.(Input), output.(Output)
	res := "fail"
	switch {
	case out.Unknown:
		res = "unknown"
		if out.Err != "" {
			res += " (" + out.Err + ")"
		}
	case in.Kind == Acquire && out.OK:
		res = fmt.Sprintf("ok id=%.6s… fence=%d exp=%d", out.LockID, out.Fence, out.ExpMs)
	case in.Kind == Acquire:
		res = "full"
	case in.Kind == Extend && out.OK:
		res = fmt.Sprintf("ok exp=%d", out.ExpMs)
	case out.OK:
		res = "ok"
	}
	switch in.Kind {
	case Acquire:
		return fmt.Sprintf("acquirePermit(%s, limit=%d, ttl=%d) → %s", in.Key, in.Limit, in.TTLMs, res)
	case Release:
		return fmt.Sprintf("releasePermit(%.6s…) → %s", in.LockID, res)
	case Extend:
		return fmt.Sprintf("extendPermit(%.6s…, ttl=%d) → %s", in.LockID, in.TTLMs, res)
	}
	return in.Kind.String()
}

func describePermitState(s PermitState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lastFence=%d permits=[", s.LastFence)
	for i, p := range s.list() {
		if i > 0 {
			b.WriteString(" ")
		}
		hi := "∞"
		if p.ExpHi != math.MaxInt64 {
			hi = fmt.Sprint(p.ExpHi)
		}
		if p.ID == Anon {
			fmt.Fprintf(&b, "?(limit %d, unknown outcome)", p.Limit)
			continue
		}
		fmt.Fprintf(&b, "%.6s…(limit %d, exp∈[%d,%s])", p.ID, p.Limit, p.ExpLo, hi)
	}
	b.WriteString("]")
	return b.String()
}
