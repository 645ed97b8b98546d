// Package zapobserver logs SyncGuard telemetry events to a go.uber.org/zap
// logger.
//
//	d := syncguard.WithTelemetry(memory.New(), zapobserver.New(logger))
package zapobserver

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/internal/caller"
)

// New returns a [syncguard.Observer] that logs each event to l with the
// message "syncguard <type>" and the fields type, result, keyHash,
// lockIdHash, reason, code and latency (empty ones omitted), plus key and
// lockId when the event carries raw fields. Events with Result "error" and
// lost-lease events are logged at Warn, others at Debug — the same mapping
// as [syncguard.NewSlogObserver]. A nil l means zap.L() at the time of each
// event.
//
// With zap.AddCaller, the caller is the user's code that called into
// SyncGuard (the line of g.Do, g.Acquire, lease.Release, ...), found by
// walking the stack past the library's frames — not this package, and not
// a fixed zap.AddCallerSkip, which cannot fit every path. Events of a
// lease's heartbeat, which runs on a goroutine of the library, name the
// library function that runs it.
func New(l *zap.Logger) syncguard.Observer {
	return observer{l: l}
}

type observer struct {
	l *zap.Logger
}

func (o observer) OnEvent(e syncguard.Event) {
	l := o.l
	if l == nil {
		l = zap.L()
	}
	level := zapcore.DebugLevel
	if e.IsProblem() {
		level = zapcore.WarnLevel
	}
	ce := l.Check(level, e.Type.LogMessage())
	if ce == nil {
		return
	}
	if ce.Entry.Caller.Defined {
		if f, pc, ok := caller.Frame(); ok {
			ce.Entry.Caller = zapcore.EntryCaller{Defined: true, PC: pc, File: f.File, Line: f.Line, Function: f.Function}
		}
	}
	var buf [9]zap.Field
	f := buf[:0]
	e.Fields(func(key string, value any) { f = append(f, zap.Any(key, value)) })
	ce.Write(f...)
}
