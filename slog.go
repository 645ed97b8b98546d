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
	a := append(buf[:0],
		slog.String("type", string(e.Type)),
		slog.String("result", e.Result))
	if e.KeyHash != "" {
		a = append(a, slog.String("keyHash", e.KeyHash))
	}
	if e.LockIDHash != "" {
		a = append(a, slog.String("lockIdHash", e.LockIDHash))
	}
	if e.Reason != "" {
		a = append(a, slog.String("reason", e.Reason))
	}
	if e.Code != 0 {
		a = append(a, slog.String("code", e.Code.String()))
	}
	a = append(a, slog.Duration("latency", e.Latency))
	if e.Key != "" {
		a = append(a, slog.String("key", e.Key))
	}
	if e.LockID != "" {
		a = append(a, slog.String("lockId", e.LockID))
	}
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

// LogMessage returns the log message of events of type t: "syncguard " + t.
func (t EventType) LogMessage() string {
	return "syncguard " + string(t)
}
