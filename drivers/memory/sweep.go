package memory

import "github.com/syncguard/syncguard/driver"

// sweepBudget bounds how many entries of each kind one write may delete, so
// that a burst of expiries never makes a single operation slow. Every write
// adds at most one heap entry, so a backlog still drains.
const sweepBudget = 8

// hnode is the heap bookkeeping embedded in every swept entry: its position
// in the heap plus one, 0 when it is not in a heap.
type hnode struct{ pos int }

// heapItem is an entry that can sit in a minHeap.
type heapItem interface {
	comparable
	hn() *hnode
}

type heapSlot[T heapItem] struct {
	at int64 // deadline: the heap order
	x  T
}

// minHeap is an indexed binary min-heap of entries by deadline, supporting
// O(log n) update and removal of arbitrary entries.
type minHeap[T heapItem] struct {
	s []heapSlot[T]
}

// set inserts x with deadline at, or moves it there if it is already in the
// heap.
func (h *minHeap[T]) set(x T, at int64) {
	n := x.hn()
	if n.pos == 0 {
		h.s = append(h.s, heapSlot[T]{at: at, x: x})
		n.pos = len(h.s)
		h.up(len(h.s) - 1)
		return
	}
	i := n.pos - 1
	old := h.s[i].at
	h.s[i].at = at
	if at < old {
		h.up(i)
	} else {
		h.down(i)
	}
}

// remove takes x out of the heap; a no-op if it is not in it.
func (h *minHeap[T]) remove(x T) {
	n := x.hn()
	if n.pos == 0 {
		return
	}
	i := n.pos - 1
	n.pos = 0
	last := len(h.s) - 1
	if i != last {
		h.s[i] = h.s[last]
		h.s[i].x.hn().pos = i + 1
	}
	h.s[last] = heapSlot[T]{}
	h.s = h.s[:last]
	if i != last {
		if i > 0 && h.s[i].at < h.s[(i-1)/2].at {
			h.up(i)
		} else {
			h.down(i)
		}
	}
}

// peek returns the entry with the earliest deadline.
func (h *minHeap[T]) peek() (x T, at int64, ok bool) {
	if len(h.s) == 0 {
		return x, 0, false
	}
	return h.s[0].x, h.s[0].at, true
}

// drain removes up to sweepBudget items due by now (at ≤ now), earliest
// first, and passes each to del.
func (h *minHeap[T]) drain(now int64, del func(T)) {
	for range sweepBudget {
		x, at, ok := h.peek()
		if !ok || at > now {
			return
		}
		h.remove(x)
		del(x)
	}
}

func (h *minHeap[T]) len() int { return len(h.s) }

// swap exchanges the entries i and j and records their new positions.
func (h *minHeap[T]) swap(i, j int) {
	s := h.s
	s[i], s[j] = s[j], s[i]
	s[i].x.hn().pos = i + 1
	s[j].x.hn().pos = j + 1
}

func (h *minHeap[T]) up(i int) {
	s := h.s
	for i > 0 {
		p := (i - 1) / 2
		if s[p].at <= s[i].at {
			break
		}
		h.swap(p, i)
		i = p
	}
}

func (h *minHeap[T]) down(i int) {
	s := h.s
	n := len(s)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].at < s[l].at {
			m = r
		}
		if s[i].at <= s[m].at {
			break
		}
		h.swap(i, m)
		i = m
	}
}

// sweep deletes, within sweepBudget per kind, the lock data of locks expired
// by more than CleanupGuardMs, the state of keys without lock or waiters
// whose fence the floor has passed by FenceMarginMs, expired records and
// spent rate state (TAT at or before now) of sh. None of them is
// observable any more (a key's next fence is the floor, which is greater),
// so lookups return the same before and after. The caller holds sh.mu.
func (d *Driver) sweep(sh *shard, nowMs, nowNs int64) {
	// Locks expired by more than CleanupGuardMs: at < nowMs − CleanupGuardMs.
	sh.lockExp.drain(nowMs-driver.CleanupGuardMs-1, func(ks *keyState) { d.dropLock(sh, ks) })
	for range sweepBudget {
		e, at, ok := sh.keepExp.peek()
		if !ok || at > nowMs {
			break
		}
		ks := e.ks
		if ks.lockID != "" || ks.qhead != nil {
			// Still in use: look again once its lock can be swept.
			sh.keepExp.set(e, max(ks.expiresAtMs+driver.CleanupGuardMs+1, nowMs+driver.FenceMarginMs))
			continue
		}
		sh.keepExp.remove(e)
		delete(sh.keys, ks.key)
	}
	sh.recExp.drain(nowMs, func(e *recordEntry) { delete(sh.records, e.name) })
	sh.rateExp.drain(nowNs, func(e *rateEntry) { delete(sh.rates, e.key) })
}
