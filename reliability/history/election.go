package history

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// An election history (package election) is a lock history of the
// election key: every Acquire, Release and Extend the candidates' Guards
// sent to the driver, and every Put and Get of the election record, checked
// with Model like any lock history. Campaign and Observation add what the
// election itself promised, for CheckElection.

// Campaign is one call of Election.Campaign.
type Campaign struct {
	Client int
	// Value is the value published; unique within a run.
	Value string
	// Term is the elected leader's term, 0 if Campaign failed.
	Term uint64
	// Call and Return are Unix ns.
	Call, Return int64
}

// Observation is one leader an observer received from Election.Observe.
type Observation struct {
	Term  uint64
	Value string
	At    int64 // Unix ns of the receipt
}

// ElectionStats counts an election run.
type ElectionStats struct {
	Campaigns, Elected int
	// Grants are successful acquisitions of the election key (terms
	// handed out, including those whose Campaign then failed).
	Grants       int
	Observers    int
	Observations int
	// Excused counts published terms an observer skipped where the rules
	// below allow it (see CheckElection).
	Excused int
}

// String summarises the counts on one line.
func (s ElectionStats) String() string {
	return fmt.Sprintf("%d campaigns, %d elected (%d terms granted), %d observers received %d leaders (%d skips excused)",
		s.Campaigns, s.Elected, s.Grants, s.Observers, s.Observations, s.Excused)
}

// CheckElection makes the election's direct checks on a run over key
// (ops is the run's history, campaigns every Campaign call, observed each
// observer's receipts in order):
//
//   - each elected term is the fence of an acquisition of key the same
//     candidate made, and a campaign that returned before another began
//     has the smaller term;
//   - each observer's terms strictly increase, each is a term granted for
//     key, and its value is the one its leader published (for a leader
//     whose Campaign failed after the grant, a value that candidate tried
//     to publish);
//   - an observer misses no published term between the first and the last
//     term it received, unless the term may have been overwritten in the
//     election record: a later leader was granted before that term's
//     Campaign returned (its read of the record may predate the term's
//     write), or the observer received at least the record's 16 terms at
//     once (a poll that came too late).
//
// Leaders never overlapping and terms increasing in the lock history are
// Model's part.
func CheckElection(key string, ops []Op, campaigns []Campaign, observed [][]Observation) (ElectionStats, []string) {
	var st ElectionStats
	var out []string
	bad := func(format string, args ...any) {
		if len(out) < 30 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	granted := map[uint64]grant{}
	for _, o := range ops {
		if o.In.Kind == Acquire && o.In.Key == key && !o.Out.Unknown && o.Out.OK {
			granted[o.Out.Fence] = grant{o.Client, o.Return}
		}
	}
	st.Grants = len(granted)
	byValue := map[string]Campaign{}
	var elected []Campaign
	for _, c := range campaigns {
		st.Campaigns++
		byValue[c.Value] = c
		if c.Term == 0 {
			continue
		}
		st.Elected++
		elected = append(elected, c)
		if g, ok := granted[c.Term]; !ok || g.client != c.Client {
			bad("campaign %q of client %d: term %d is no acquisition of %s by that client (%+v, %t)", c.Value, c.Client, c.Term, key, g, ok)
		}
	}
	slices.SortFunc(elected, func(a, b Campaign) int { return cmp.Compare(a.Term, b.Term) })
	for i, a := range elected {
		for _, b := range elected[i+1:] {
			if b.Return < a.Call { // b (the greater term) finished before a began
				bad("campaign %q (term %d) returned before campaign %q (term %d) began", b.Value, b.Term, a.Value, a.Term)
			}
		}
	}

	st.Observers = len(observed)
	for n, seq := range observed {
		st.Observations += len(seq)
		for i, o := range seq {
			if i > 0 && o.Term <= seq[i-1].Term {
				bad("observer %d: term %d after %d", n, o.Term, seq[i-1].Term)
			}
			g, ok := granted[o.Term]
			if !ok {
				bad("observer %d: term %d was never granted", n, o.Term)
				continue
			}
			c, ok := byValue[o.Value]
			switch {
			case !ok:
				bad("observer %d: term %d with value %q, which no candidate published", n, o.Term, o.Value)
			case c.Client != g.client:
				bad("observer %d: term %d of client %d with value %q of client %d", n, o.Term, g.client, o.Value, c.Client)
			case c.Term != 0 && c.Term != o.Term:
				bad("observer %d: term %d with value %q, published for term %d", n, o.Term, o.Value, c.Term)
			case o.At < c.Call:
				bad("observer %d: value %q received before its Campaign began", n, o.Value)
			}
		}
		if len(seq) < 2 {
			continue
		}
		seen := map[uint64]bool{}
		for _, o := range seq {
			seen[o.Term] = true
		}
		first, last := seq[0].Term, seq[len(seq)-1].Term
		for _, a := range elected {
			if a.Term <= first || a.Term >= last || seen[a.Term] {
				continue
			}
			if excusedSkip(a, last, granted, seq) {
				st.Excused++
				continue
			}
			bad("observer %d: skipped term %d (%q) between %d and %d", n, a.Term, a.Value, first, last)
		}
	}
	return st, out
}

// grant is a successful acquisition of the election key: the candidate
// and the return time (Unix ns).
type grant struct {
	client int
	ret    int64
}

// recordTerms is how many terms the election record keeps (package
// election's historyLen).
const recordTerms = 16

// burstWindow: receipts this close together come from one poll.
const burstWindow = 10 * int64(1e6)

// excusedSkip reports whether an observer whose last term is last may
// have missed the published term a (see CheckElection).
func excusedSkip(a Campaign, last uint64, granted map[uint64]grant, seq []Observation) bool {
	for f, g := range granted {
		if f > a.Term && f <= last && g.ret < a.Return {
			return true // the leader of f may have read the record before a's write
		}
	}
	q := slices.IndexFunc(seq, func(o Observation) bool { return o.Term > a.Term })
	n := 0
	for _, o := range seq[q:] {
		if o.At-seq[q].At < burstWindow {
			n++
		}
	}
	return n >= recordTerms
}

// FormatObservations formats an observer's receipts for a report.
func FormatObservations(seq []Observation) string {
	var b strings.Builder
	for i, o := range seq {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d=%q", o.Term, o.Value)
	}
	return b.String()
}
