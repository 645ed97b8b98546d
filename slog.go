package syncguard

import (
	"context"
	"log/slog"
	"time"

	"github.com/syncguard/syncguard/internal/caller"
)

// NewSlogObserver returns an [Observer] logging each event to l (nil:
// slog.Default() at each event) as [EventType.LogMessage] with attributes
// type, result, latency and, when set, keyHash, lockIdHash, reason, code, key,
// lockId; at Warn if [Event.IsProblem], else Debug. The record's source is the
// caller's call into syncguard.
func NewSlogObserver(l *slog.Logger) Observer {
	return &slogObserver{l: l, normal: slog.LevelDebug, problem: slog.LevelWarn}
}

type slogObserver struct {
	l               *slog.Logger
	normal, problem slog.Level
}

func (o *slogObserver) OnEvent(e Event) {
	l := o.l
	if l == nil {
		l = slog.Default()
	}
	level := o.normal
	if e.IsProblem() {
		level = o.problem
	}
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	var buf [9]slog.Attr
	a := buf[:0]
	e.Fields(func(key string, value any) { a = append(a, slog.Any(key, value)) })
	// The record's source is the user's call into SyncGuard, not this
	// adapter (see zapobserver for the same rule).
	_, pc, _ := caller.Frame()
	r := slog.NewRecord(time.Now(), level, e.Type.LogMessage(), pc)
	r.AddAttrs(a...)
	_ = l.Handler().Handle(ctx, r)
}

// IsProblem reports whether e is a ResultError or an EventLost.
func (e Event) IsProblem() bool {
	return e.Result == ResultError || e.Type == EventLost
}

// Fields calls fn with each field of e's log record, in order: type,
// result, keyHash, lockIdHash, reason, code, latency (a time.Duration), key
// and lockId, skipping empty ones. The slog and zap observers log exactly
// these.
func (e Event) Fields(fn func(key string, value any)) {
	fn("type", string(e.Type))
	fn("result", e.Result)
	for _, f := range [...]struct{ k, v string }{{"keyHash", e.KeyHash}, {"lockIdHash", e.LockIDHash}, {"reason", e.Reason}} {
		if f.v != "" {
			fn(f.k, f.v)
		}
	}
	if e.Code != 0 {
		fn("code", e.Code.String())
	}
	fn("latency", e.Latency)
	if e.Key != "" {
		fn("key", e.Key)
	}
	if e.LockID != "" {
		fn("lockId", e.LockID)
	}
}

// LogMessage returns the log message of events of type t: "syncguard " + t.
func (t EventType) LogMessage() string {
	return "syncguard " + string(t)
}
