// Package history records operations against a SyncGuard driver and checks
// the recorded history for linearizability with porcupine
// (github.com/anishathalye/porcupine) against a per-key model of a fenced
// lock: the holder's lock ID and expiry, the last fence handed out, and the
// last accepted fenced record.
//
// Times are wall-clock Unix nanoseconds taken immediately before a call and
// immediately after it returns, so histories of several processes on one
// machine merge into one. The model is time-aware: a lock with expiry E is
// live at authority time t iff E > t − Tolerance (docs/contract.md#time), and an
// operation's linearization point lies within [call, return]; the model
// allows an outcome that depends on liveness whenever some point of the
// interval (widened by ClockMargin) allows it, so it never reports a
// violation that a correct driver on this machine's clock could produce.
//
// An operation whose outcome is unknown (timeout, cut connection, any error
// of a mutation) is recorded with Output.Unknown and a return time of
// infinity (math.MaxInt64), porcupine's documented way to say "this call may
// take effect at any point after its invocation, or never": the model then
// branches into both outcomes (a nondeterministic model).
//
// PermitModel (permits.go) checks permit histories of a driver.PermitStore
// the same way, and CheckElection (election.go) adds the direct checks of
// an election run, whose lock calls are checked with Model.
package history

import (
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/syncguard/syncguard/driver"
)

// Kind is an operation kind.
type Kind uint8

// Operation kinds. Failover and Wipe are events injected by the fault
// scheduler, not calls of a worker.
const (
	Acquire Kind = iota + 1
	Release
	Extend
	Put
	Get
	// Failover: a Redis primary died and a replica that may lag took over;
	// the holder may lose its lock and the record may revert (asynchronous
	// replication, documented in drivers/redis). Fences must still increase.
	Failover
	// Wipe: the store lost all its data (the in-memory Firestore emulator
	// restarted, a Redis node restarted without persistence). Locks and
	// records start afresh; fences must still increase (they are floored
	// by the clock, see driver.FenceFloor).
	Wipe
	// Crash: a durable server (PostgreSQL) crashed and restarted. Every
	// acknowledged acquisition, extension and write survives; a plain
	// release, which commits asynchronously (docs/postgres.md), may be
	// undone if no later acknowledged acquisition of its key made it
	// durable: the released lock is then back with its old expiry.
	Crash
)

var kindNames = [...]string{Acquire: "acquire", Release: "release", Extend: "extend", Put: "put", Get: "get", Failover: "failover", Wipe: "wipe", Crash: "crash"}

// String returns the kind's name ("acquire", "release", …).
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// AllKeys is the Key of a Failover, Wipe or Crash event: it applies to
// every key.
const AllKeys = "*"

// Input is an operation's call.
type Input struct {
	Kind   Kind   `json:"k"`
	Key    string `json:"key"`
	LockID string `json:"id,omitempty"`
	TTLMs  int64  `json:"ttl,omitempty"`
	Fence  uint64 `json:"f,omitempty"`
	Value  string `json:"v,omitempty"`
	// Limit is the permit count of a permit acquisition (permit histories
	// only, see PermitModel).
	Limit int `json:"n,omitempty"`
	// CallMs is the invocation time in Unix ms (copied from the operation
	// so that the model can reason about expiry).
	CallMs int64 `json:"c"`
}

// Output is an operation's result.
type Output struct {
	// Unknown: the call failed and may or may not have taken effect.
	Unknown bool `json:"u,omitempty"`
	// OK: acquired, released, extended, stored; for Get: found.
	OK     bool   `json:"ok,omitempty"`
	LockID string `json:"id,omitempty"`
	Fence  uint64 `json:"f,omitempty"`
	ExpMs  int64  `json:"e,omitempty"`
	Value  string `json:"v,omitempty"`
	// ReturnMs is the return time in Unix ms, math.MaxInt64 when unknown.
	ReturnMs int64 `json:"r"`
	// Err is the error's code, for reports only.
	Err string `json:"err,omitempty"`
}

// Op is one recorded operation (JSON-serialisable, so that worker
// processes can ship their histories to the test).
type Op struct {
	Client int    `json:"cl"`
	In     Input  `json:"in"`
	Out    Output `json:"out"`
	Call   int64  `json:"cn"` // Unix ns
	Return int64  `json:"rn"` // Unix ns, math.MaxInt64 when unknown
}

// Infinity is the return time of an operation with an unknown outcome.
const Infinity = math.MaxInt64

// Recorder collects operations; it is safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	ops []Op
}

// Now returns the current wall-clock time in Unix ns, the time base of
// every recorded operation.
func Now() int64 { return time.Now().UnixNano() }

// Add records an operation called at call (Unix ns) and returned at ret;
// it fills the ms copies in In and Out. If out.Unknown, ret is ignored and
// the operation gets return time Infinity.
func (r *Recorder) Add(client int, in Input, out Output, call, ret int64) {
	in.CallMs = call / 1e6
	if out.Unknown {
		ret = Infinity
		out.ReturnMs = math.MaxInt64
	} else {
		out.ReturnMs = (ret + 1e6 - 1) / 1e6
	}
	r.mu.Lock()
	r.ops = append(r.ops, Op{Client: client, In: in, Out: out, Call: call, Return: ret})
	r.mu.Unlock()
}

// AddOp appends already recorded operations (from another process).
func (r *Recorder) AddOp(ops ...Op) {
	r.mu.Lock()
	r.ops = append(r.ops, ops...)
	r.mu.Unlock()
}

// Ops returns a copy of the recorded operations.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// Event records a Failover, Wipe or Crash event that happened between
// start and end (Unix ns) under client id client.
func (r *Recorder) Event(client int, kind Kind, start, end int64) {
	r.Add(client, Input{Kind: kind, Key: AllKeys}, Output{OK: true}, start, end)
}

// Stats summarises a history.
type Stats struct {
	Ops      int            // operations, events excluded
	Unknown  int            // operations with unknown outcome
	Keys     int            // distinct keys
	Clients  int            // distinct clients
	ByKind   map[string]int // operations per kind
	Acquired int            // successful acquisitions
	Stored   int            // accepted fenced writes
	Refused  int            // refused (stale) fenced writes
	Events   int            // Failover, Wipe and Crash events
}

// Summarise counts a history.
func Summarise(ops []Op) Stats {
	s := Stats{ByKind: map[string]int{}}
	keys, clients := map[string]bool{}, map[int]bool{}
	for _, o := range ops {
		if o.In.Kind == Failover || o.In.Kind == Wipe || o.In.Kind == Crash {
			s.Events++
			continue
		}
		s.Ops++
		s.ByKind[o.In.Kind.String()]++
		keys[o.In.Key] = true
		clients[o.Client] = true
		if o.Out.Unknown {
			s.Unknown++
			continue
		}
		switch {
		case o.In.Kind == Acquire && o.Out.OK:
			s.Acquired++
		case o.In.Kind == Put && o.Out.OK:
			s.Stored++
		case o.In.Kind == Put:
			s.Refused++
		}
	}
	s.Keys, s.Clients = len(keys), len(clients)
	return s
}

// String summarises the statistics on one line.
func (s Stats) String() string {
	kinds := make([]string, 0, len(s.ByKind))
	for k, n := range s.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%d ops (%s) on %d keys by %d clients: %d unknown outcomes, %d acquisitions, %d accepted and %d refused fenced writes, %d fault events",
		s.Ops, strings.Join(kinds, " "), s.Keys, s.Clients, s.Unknown, s.Acquired, s.Stored, s.Refused, s.Events)
}

// State is the model's state of one key. It is a comparable value.
type State struct {
	// Holder is the lock ID of the current or last holder, "" for none,
	// Anon for a lock taken by a call whose outcome is unknown (its ID was
	// never returned, so nobody can release it; the driver may release it
	// on its own, so it may also be gone at any moment).
	Holder string
	// ExpLo and ExpHi bound the holder's expiry (authority Unix ms).
	ExpLo, ExpHi int64
	// MaybeGone: a failover may have lost the holder's lock.
	MaybeGone bool
	// LastFence is the largest fence known to have been handed out.
	LastFence uint64
	// RecKnown: the record state below is known (false after a failover).
	RecKnown bool
	HasRec   bool
	RecFence uint64
	// RecValue is the stored value; AnyValue when only the fence is known.
	RecValue string
	// Released is the lock ID of a lock whose release was acknowledged
	// since the key's last acknowledged acquisition, "" for none, and
	// RelExpLo, RelExpHi bound its expiry: a Crash may bring it back.
	Released           string
	RelExpLo, RelExpHi int64
}

// Anon is State.Holder for a lock of unknown ID.
const Anon = "?"

// AnyValue is State.RecValue when the record's value is not known.
const AnyValue = "\x00?"

// ToleranceMs is the contract's liveness tolerance (docs/contract.md#time).
const ToleranceMs = driver.ToleranceMs

// ClockMargin widens every time comparison of the model, in ms: the
// authority clock (Redis TIME, PostgreSQL clock_timestamp, the client clock
// for Firestore) is this machine's clock, read with ms truncation.
var ClockMargin int64 = 50

func initState() State { return State{RecKnown: true} }

// possiblyLive: the holder's lock may be live at some point of [c, r].
func (s State) possiblyLive(c int64) bool {
	switch s.Holder {
	case "":
		return false
	case Anon:
		return true
	}
	return c < sat(s.ExpHi, ToleranceMs+ClockMargin)
}

// possiblyFree: the key may be free at some point of [c, r].
func (s State) possiblyFree(r int64) bool {
	if s.Holder == "" || s.Holder == Anon || s.MaybeGone {
		return true
	}
	return r >= s.ExpLo+ToleranceMs-ClockMargin
}

func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// expOK: an expiry returned by an acquire or extend with ttl is authority
// now + ttl for a now within [c, r].
func expOK(exp, c, r, ttl int64) bool {
	return exp >= c+ttl-ClockMargin && exp <= sat(r, ttl+ClockMargin)
}

// step returns every state the key can be in after the operation.
func step(s State, in Input, out Output) []State {
	c, r := in.CallMs, out.ReturnMs
	switch in.Kind {
	case Failover:
		// The new primary may lack the last writes: the holder may have
		// lost its lock (or still hold it), the record may be any earlier
		// value. One state with these uncertainties (rather than one per
		// combination) keeps the search small. Fences must still increase.
		n := s
		n.MaybeGone = s.Holder != ""
		n.RecKnown, n.HasRec, n.RecFence, n.RecValue = false, false, 0, ""
		n.Released = ""
		return []State{n}
	case Wipe:
		n := initState()
		n.LastFence = s.LastFence
		return []State{s, n}
	case Crash:
		// The release survived (it is durable from now on), or it is
		// undone: its lock is back, unless an acquisition holds the key
		// (acknowledged: it made the release durable; Anon: it may not
		// have happened, and then the release may be undone).
		kept := s
		kept.Released, kept.RelExpLo, kept.RelExpHi = "", 0, 0
		res := []State{kept}
		if s.Released != "" && (s.Holder == "" || s.Holder == Anon) {
			back := kept
			back.Holder, back.ExpLo, back.ExpHi, back.MaybeGone = s.Released, s.RelExpLo, s.RelExpHi, false
			res = append(res, back)
		}
		return res
	case Acquire:
		if out.Unknown {
			res := []State{s}
			if s.possiblyFree(math.MaxInt64) {
				n := s
				n.Holder, n.ExpLo, n.ExpHi, n.MaybeGone = Anon, 0, math.MaxInt64, false
				res = append(res, n)
			}
			return res
		}
		if !out.OK { // contended
			if s.possiblyLive(c) {
				return []State{s}
			}
			return nil
		}
		if !s.possiblyFree(r) || out.Fence <= s.LastFence || !expOK(out.ExpMs, c, r, in.TTLMs) {
			return nil
		}
		n := s
		n.Holder, n.ExpLo, n.ExpHi, n.LastFence, n.MaybeGone = out.LockID, out.ExpMs, out.ExpMs, out.Fence, false
		n.Released, n.RelExpLo, n.RelExpHi = "", 0, 0 // committed after the release: it is durable
		return []State{n}
	case Release:
		mine := s.Holder == in.LockID
		cleared := s
		cleared.Holder, cleared.ExpLo, cleared.ExpHi, cleared.MaybeGone = "", 0, 0, false
		cleared.Released, cleared.RelExpLo, cleared.RelExpHi = s.Holder, s.ExpLo, s.ExpHi
		if out.Unknown {
			if mine && s.possiblyLive(c) {
				return []State{s, cleared}
			}
			return []State{s}
		}
		if out.OK {
			if mine && s.possiblyLive(c) {
				return []State{cleared}
			}
			return nil
		}
		if !mine {
			return []State{s}
		}
		if !s.possiblyFree(r) {
			return nil
		}
		return []State{expiredBy(s, r)}
	case Extend:
		mine := s.Holder == in.LockID
		if out.Unknown {
			if mine && s.possiblyLive(c) {
				n := s
				n.ExpLo, n.ExpHi = c+in.TTLMs-ClockMargin, math.MaxInt64
				if n.ExpLo > s.ExpLo {
					n.ExpLo = s.ExpLo // not applied (yet): the old expiry still holds
				}
				return []State{s, n}
			}
			return []State{s}
		}
		if out.OK {
			if mine && s.possiblyLive(c) && expOK(out.ExpMs, c, r, in.TTLMs) {
				n := s
				n.ExpLo, n.ExpHi = out.ExpMs, out.ExpMs
				return []State{n}
			}
			return nil
		}
		if !mine {
			return []State{s}
		}
		if !s.possiblyFree(r) {
			return nil
		}
		return []State{expiredBy(s, r)}
	case Put:
		accept := !s.RecKnown || !s.HasRec || in.Fence >= s.RecFence
		stored := s
		stored.RecKnown, stored.HasRec, stored.RecFence, stored.RecValue = true, true, in.Fence, in.Value
		if out.Unknown {
			if accept {
				return []State{s, stored}
			}
			return []State{s}
		}
		if out.OK {
			if accept {
				return []State{stored}
			}
			return nil
		}
		// Refused: the stored fence is newer, and reported.
		if !s.RecKnown {
			if out.Fence > in.Fence {
				n := s
				n.RecKnown, n.HasRec, n.RecFence, n.RecValue = true, true, out.Fence, AnyValue
				return []State{n}
			}
			return nil
		}
		if s.HasRec && in.Fence < s.RecFence && out.Fence == s.RecFence {
			return []State{s}
		}
		return nil
	case Get:
		if out.Unknown {
			return []State{s}
		}
		if !s.RecKnown {
			n := s
			n.RecKnown, n.HasRec = true, out.OK
			n.RecFence, n.RecValue = 0, ""
			if out.OK {
				n.RecFence, n.RecValue = out.Fence, out.Value
			}
			return []State{n}
		}
		if !out.OK {
			if !s.HasRec {
				return []State{s}
			}
			return nil
		}
		if s.HasRec && s.RecFence == out.Fence && (s.RecValue == out.Value || s.RecValue == AnyValue) {
			n := s
			n.RecValue = out.Value
			return []State{n}
		}
		return nil
	}
	return nil
}

// expiredBy: a release or extend of the holder failed at a point ≤ r, so
// the lock had expired by then: exp + tolerance ≤ r.
func expiredBy(s State, r int64) State {
	if hi := r - ToleranceMs + ClockMargin; hi < s.ExpHi {
		s.ExpHi = hi
		if s.ExpLo > hi {
			s.ExpLo = hi
		}
	}
	return s
}

// Model is the porcupine model: per key, partitioned by key; Failover and
// Wipe events belong to every partition.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partition,
		Init:      func() []any { return []any{initState()} },
		Step: func(state, input, output any) []any {
			next := step(state.(State), input.(Input), output.(Output))
			res := make([]any, len(next))
			for i, n := range next {
				res[i] = n
			}
			return res
		},
		Equal:             func(a, b any) bool { return a.(State) == b.(State) },
		Hash:              hashState,
		DescribeOperation: describeOp,
		DescribeState: func(state any) string {
			return describeState(state.(State))
		},
	}
	return nm.ToModel()
}

func hashState(state any) uint64 {
	st := state.(State)
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%d|%d|%t|%d|%t|%t|%d|%s|%s|%d|%d", st.Holder, st.ExpLo, st.ExpHi, st.MaybeGone, st.LastFence, st.RecKnown, st.HasRec, st.RecFence, st.RecValue,
		st.Released, st.RelExpLo, st.RelExpHi)
	return h.Sum64()
}

func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var events []porcupine.Operation
	for _, o := range history {
		k := o.Input.(Input).Key
		if k == AllKeys {
			events = append(events, o)
			continue
		}
		byKey[k] = append(byKey[k], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	res := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		res = append(res, append(byKey[k], events...))
	}
	return res
}

func describeOp(input, output any) string {
	in, out := input.(Input), output.(Output)
	res := "?"
	switch {
	case out.Unknown:
		res = "unknown"
		if out.Err != "" {
			res += " (" + out.Err + ")"
		}
	case in.Kind == Acquire && out.OK:
		res = fmt.Sprintf("ok id=%.6s… fence=%d exp=%d", out.LockID, out.Fence, out.ExpMs)
	case in.Kind == Acquire:
		res = "locked"
	case in.Kind == Extend && out.OK:
		res = fmt.Sprintf("ok exp=%d", out.ExpMs)
	case in.Kind == Put && !out.OK:
		res = fmt.Sprintf("refused (stored fence %d)", out.Fence)
	case in.Kind == Get && out.OK:
		res = fmt.Sprintf("%q fence=%d", out.Value, out.Fence)
	case in.Kind == Get:
		res = "absent"
	case out.OK:
		res = "ok"
	default:
		res = "fail"
	}
	switch in.Kind {
	case Acquire:
		return fmt.Sprintf("acquire(%s, ttl=%d) → %s", in.Key, in.TTLMs, res)
	case Release:
		return fmt.Sprintf("release(%.6s…) → %s", in.LockID, res)
	case Extend:
		return fmt.Sprintf("extend(%.6s…, ttl=%d) → %s", in.LockID, in.TTLMs, res)
	case Put:
		return fmt.Sprintf("put(%s, fence=%d, %q) → %s", in.Key, in.Fence, in.Value, res)
	case Get:
		return fmt.Sprintf("get(%s) → %s", in.Key, res)
	}
	return in.Kind.String()
}

func describeState(s State) string {
	rec := "none"
	switch {
	case !s.RecKnown:
		rec = "unknown"
	case s.HasRec:
		rec = fmt.Sprintf("%q@%d", s.RecValue, s.RecFence)
	}
	holder := "free"
	if s.Holder != "" {
		holder = fmt.Sprintf("%.6s… exp∈[%d,%d]", s.Holder, s.ExpLo, s.ExpHi)
		if s.MaybeGone {
			holder += " (maybe lost in a failover)"
		}
	}
	if s.Released != "" {
		holder += fmt.Sprintf(" (released %.6s… may come back in a crash)", s.Released)
	}
	return fmt.Sprintf("holder=%s lastFence=%d record=%s", holder, s.LastFence, rec)
}

// Result of a check.
type Result struct {
	// Outcome is porcupine's verdict: Ok, Illegal or Unknown (timed out).
	Outcome porcupine.CheckResult
	// Visualization is the path of the HTML visualisation, written when
	// the outcome is not Ok.
	Visualization string
	// Violations lists direct checks that failed (duplicate fences).
	Violations []string
	Stats      Stats
}

// OK reports whether the history is linearizable and no direct check failed.
func (r Result) OK() bool { return r.Outcome == porcupine.Ok && len(r.Violations) == 0 }

// Check checks ops against the model within timeout. When the history is
// not linearizable (or the check timed out), it writes porcupine's HTML
// visualisation to a file under dir and returns its path.
func Check(ops []Op, timeout time.Duration, dir, name string) Result {
	return check(Model(), directChecks, ops, timeout, dir, name)
}

// check is Check with the model and the direct checks given.
func check(model porcupine.Model, direct func([]Op) []string, ops []Op, timeout time.Duration, dir, name string) Result {
	res := Result{Stats: Summarise(ops), Violations: direct(ops)}
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, o := range ops {
		hist = append(hist, porcupine.Operation{ClientId: o.Client, Input: o.In, Call: o.Call, Output: o.Out, Return: o.Return})
	}
	outcome, info := porcupine.CheckOperationsVerbose(model, hist, timeout)
	res.Outcome = outcome
	if outcome != porcupine.Ok || len(res.Violations) > 0 {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			p := filepath.Join(dir, sanitize(name)+".html")
			if err := porcupine.VisualizePath(model, info, p); err == nil {
				res.Visualization = p
			} else {
				res.Violations = append(res.Violations, "writing the visualisation: "+err.Error())
			}
			// The raw history too, for replay.
			if b, err := json.Marshal(ops); err == nil {
				_ = os.WriteFile(filepath.Join(dir, sanitize(name)+".json"), b, 0o644)
			}
		}
	}
	return res
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// directChecks are model-independent checks: a fence is never handed out
// twice for one key (within one wipe epoch), and within one client's
// sequential calls, fences of a key increase.
func directChecks(ops []Op) []string {
	var out []string
	sorted := slices.Clone(ops)
	slices.SortFunc(sorted, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	var wipes []int64
	for _, o := range sorted {
		if o.In.Kind == Wipe {
			wipes = append(wipes, o.Call)
		}
	}
	epoch := func(t int64) int {
		n := 0
		for _, w := range wipes {
			if t > w {
				n++
			}
		}
		return n
	}
	type fk struct {
		key   string
		epoch int
		fence uint64
	}
	seen := map[fk]string{}
	for _, o := range sorted {
		if o.In.Kind != Acquire || !o.Out.OK || o.Out.Unknown {
			continue
		}
		straddles := false
		for _, w := range wipes {
			straddles = straddles || (o.Call <= w && o.Return >= w)
		}
		if straddles {
			continue // its epoch is ambiguous
		}
		k := fk{o.In.Key, epoch(o.Call), o.Out.Fence}
		if prev, dup := seen[k]; dup && prev != o.Out.LockID {
			out = append(out, fmt.Sprintf("key %s: fence %d handed out twice (lock IDs %s and %s)", o.In.Key, o.Out.Fence, prev, o.Out.LockID))
		}
		seen[k] = o.Out.LockID
	}
	return out
}
