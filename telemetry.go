package syncguard

import (
	"time"

	"github.com/syncguard/syncguard/driver"
)

// EventType names the operation an [Event] reports.
type EventType string

// Event types of backend calls: a Guard with an observer ([WithObserver])
// emits one after each call it, its leases or its primitives make, and
// EventLost when a lease is lost before its holder released it.
const (
	EventAcquire EventType = "acquire"
	EventRelease EventType = "release"
	EventExtend  EventType = "extend"
	EventLookup  EventType = "lookup"
	EventLost    EventType = "lost"
)

// Event results.
const (
	// ResultOK: the call succeeded (acquired, released, extended, locked,
	// found).
	ResultOK = "ok"
	// ResultFail: the call completed without error but did not succeed
	// (contended, not released, not extended, not locked, not found).
	ResultFail = "fail"
	// ResultError: the call returned an error; Event.Code classifies it.
	ResultError = "error"
)

// Event is one observed backend call plus its latency and, for failed
// calls, the error code; or one whole operation (see [OperationObserver]).
//
// Keys and lock IDs appear only as digests (the first 12 bytes of their
// SHA-256, base64url) unless [WithRawEvents] adds them.
type Event struct {
	// Type is the operation.
	Type EventType
	// Result is ResultOK, ResultFail or ResultError.
	Result string
	// KeyHash is the digest of the normalised key (every event but a
	// lookup by lock ID).
	KeyHash string
	// LockIDHash is the digest of the lock ID (release, extend, lookup by
	// ID, lost).
	LockIDHash string
	// Reason explains a failure or an outcome: "locked" for a contended
	// acquire or acquisition, "expired" or "not-found" for a release or
	// extend when the driver said, why a lease was lost for EventLost,
	// "limited" for a refused rate request, "replayed" for an OncePerKey
	// call answered from its record and "in-progress" for one that found
	// another caller running. Empty otherwise.
	Reason string
	// Key is the raw normalised key, set only when raw output is on.
	Key string
	// LockID is the raw lock ID, set only when raw output is on (for
	// acquire: only when the lock was acquired).
	LockID string
	// Code is the error's code when Result is ResultError (Internal for an
	// error that is not a *LockError); 0 otherwise.
	Code driver.Code
	// Latency is the time spent in the driver call (for operation events:
	// in the operation, see [EventAcquisition]).
	Latency time.Duration
	// Handoff marks an acquire event of an attempt made by a queued waiter
	// of a [HandoffWatcher] (a successful one claimed a hand-off or found
	// the key free). Set only for an [OperationObserver].
	Handoff bool
	// AutoExtend marks an extend event of a lease's heartbeat (see
	// [AutoExtend]). Set only for an [OperationObserver].
	AutoExtend bool
	// Held is, for [EventLeaseRelease], the time from the acquisition of
	// the lease to the start of its release.
	Held time.Duration
}

// Observer receives events. OnEvent is called synchronously on the
// goroutine that made the driver call, so it should be fast; it may be
// called concurrently and must be safe for concurrent use. A panic in
// OnEvent is recovered by the caller and never changes a result or error.
type Observer interface {
	OnEvent(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// OnEvent calls f(e).
func (f ObserverFunc) OnEvent(e Event) { f(e) }

// MultiObserver returns an Observer that passes every event to each of obs
// in order, skipping nil entries. A panic in one observer is recovered and
// does not keep the event from the others.
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
