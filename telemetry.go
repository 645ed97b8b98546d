package syncguard

import (
	"time"

	"github.com/syncguard/syncguard/driver"
)

// EventType names what an [Event] reports.
type EventType string

// Event types of backend calls, emitted after each call of a Guard with
// [WithObserver], its leases and primitives (EventLookup: IsLocked, Lookup,
// LookupID), and EventLost when a lease is lost before its release.
const (
	EventAcquire EventType = "acquire"
	EventRelease EventType = "release"
	EventExtend  EventType = "extend"
	EventLookup  EventType = "lookup"
	EventLost    EventType = "lost"
	// EventRate is one decision of a [RateLimiter] built with
	// [WithObserver]: ok (granted or n = 0), fail "limited", or error.
	EventRate EventType = "rate"
	// EventRecord is one read, write or delete of a fenced record (the
	// results of [OncePerKey], the values of [FencedWriter]): ok, fail
	// (not found; "stale" for a write refused for an older fence), or error.
	EventRecord EventType = "record"
)

// Event results.
const (
	ResultOK    = "ok"    // success: acquired, released, extended, locked, found
	ResultFail  = "fail"  // no error, no success: contended, not held, not found
	ResultError = "error" // the call failed; Event.Code classifies it
)

// Event reports one backend call, or one whole operation (see
// [OperationObserver]). Keys and lock IDs appear as digests (the first 12
// bytes of their SHA-256, in hex; left empty for an OperationObserver whose
// NeedsDigests returns false) unless [WithRawEvents] adds them.
type Event struct {
	Type       EventType     // what the event reports
	Result     string        // ResultOK, ResultFail or ResultError
	KeyHash    string        // the normalised key's digest ("" for a lookup by ID)
	LockIDHash string        // the lock ID's digest (release, extend, lookup by ID, lost)
	Reason     string        // qualifies a result ("locked", "expired", ...; see docs/observability.md)
	Key        string        // the raw normalised key, only with [WithRawEvents]
	LockID     string        // the raw lock ID, only with [WithRawEvents] (acquire: if acquired)
	Code       driver.Code   // the code of a ResultError (Internal if not a *LockError)
	Latency    time.Duration // time spent in the driver call or operation
	Handoff    bool          // an acquire by a queued hand-off waiter ([OperationObserver] only)
	AutoExtend bool          // an extend by a lease's heartbeat ([OperationObserver] only)
	Held       time.Duration // for [EventLeaseRelease]: time from acquisition to release
}

// Observer receives events. OnEvent is called synchronously, possibly
// concurrently, on the goroutine that made the call, so it must be fast and
// safe for concurrent use; its panics are recovered and never change a result.
type Observer interface {
	OnEvent(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// OnEvent calls f(e).
func (f ObserverFunc) OnEvent(e Event) { f(e) }

// MultiObserver returns an [OperationObserver] passing every event to each
// non-nil obs in order, in the form each takes; a panic in one does not keep
// the event from the others.
func MultiObserver(obs ...Observer) Observer {
	list := make([]Observer, 0, len(obs))
	for _, o := range obs {
		if !nilObserver(o) {
			list = append(list, o)
		}
	}
	return multiObserver(list)
}

type multiObserver []Observer

func (m multiObserver) OnEvent(e Event) {
	for _, o := range m {
		notify(o, e)
	}
}

// notify calls o.OnEvent(e), recovering any panic.
func notify(o Observer, e Event) {
	defer func() { _ = recover() }()
	o.OnEvent(e)
}

func nilObserver(o Observer) bool {
	if o == nil {
		return true
	}
	f, ok := o.(ObserverFunc)
	return ok && f == nil
}
