package zapobserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/zapobserver"
)

type logLine struct {
	Level   zapcore.Level
	Message string
	Fields  map[string]any
}

func TestTelemetryZapObserver(t *testing.T) {
	tests := []struct {
		name  string
		event syncguard.Event
		want  logLine
	}{
		{
			name:  "case145/acquire-ok",
			event: syncguard.Event{Type: syncguard.EventAcquire, Result: syncguard.ResultOK, KeyHash: "kh", Latency: 2 * time.Millisecond},
			want: logLine{zapcore.DebugLevel, "syncguard acquire", map[string]any{
				"type": "acquire", "result": "ok", "keyHash": "kh", "latency": 2 * time.Millisecond,
			}},
		},
		{
			name:  "case145/acquire-contended",
			event: syncguard.Event{Type: syncguard.EventAcquire, Result: syncguard.ResultFail, KeyHash: "kh", Reason: driver.ReasonLocked},
			want: logLine{zapcore.DebugLevel, "syncguard acquire", map[string]any{
				"type": "acquire", "result": "fail", "keyHash": "kh", "reason": "locked", "latency": time.Duration(0),
			}},
		},
		{
			name:  "case147/extend-error",
			event: syncguard.Event{Type: syncguard.EventExtend, Result: syncguard.ResultError, LockIDHash: "ih", Code: driver.ServiceUnavailable},
			want: logLine{zapcore.WarnLevel, "syncguard extend", map[string]any{
				"type": "extend", "result": "error", "lockIdHash": "ih", "code": "ServiceUnavailable", "latency": time.Duration(0),
			}},
		},
		{
			name:  "lost",
			event: syncguard.Event{Type: syncguard.EventLost, Result: syncguard.ResultFail, Reason: "expired"},
			want: logLine{zapcore.WarnLevel, "syncguard lost", map[string]any{
				"type": "lost", "result": "fail", "reason": "expired", "latency": time.Duration(0),
			}},
		},
		{
			name:  "case146/raw-fields",
			event: syncguard.Event{Type: syncguard.EventLookup, Result: syncguard.ResultOK, Key: "k", LockID: "id"},
			want: logLine{zapcore.DebugLevel, "syncguard lookup", map[string]any{
				"type": "lookup", "result": "ok", "key": "k", "lockId": "id", "latency": time.Duration(0),
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			zapobserver.New(zap.New(core)).OnEvent(tt.event)
			entries := logs.AllUntimed()
			if len(entries) != 1 {
				t.Fatalf("%d log entries, want 1", len(entries))
			}
			e := entries[0]
			got := logLine{e.Level, e.Message, e.ContextMap()}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("log entry (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTelemetryZapObserverLevelFilter(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	o := zapobserver.New(zap.New(core))
	o.OnEvent(syncguard.Event{Type: syncguard.EventRelease, Result: syncguard.ResultOK})
	o.OnEvent(syncguard.Event{Type: syncguard.EventRelease, Result: syncguard.ResultError, Code: driver.Aborted})
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d entries, want only the warning", n)
	}
}

func TestTelemetryZapObserverNilLogger(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	o := zapobserver.New(nil) // resolved per event
	undo := zap.ReplaceGlobals(zap.New(core))
	defer undo()
	o.OnEvent(syncguard.Event{Type: syncguard.EventLookup, Result: syncguard.ResultFail})
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d entries via zap.L(), want 1", n)
	}
}

// zapFakeCaps and zapFakeDriver: a minimal driver for the end-to-end check.
type zapFakeCaps struct{}

func (zapFakeCaps) Name() string { return "zap-fake" }

const zapFakeID = "AAAAAAAAAAAAAAAAAAAAAA"

type zapFakeDriver struct{ driver.LockStore }

func (zapFakeDriver) Capabilities() zapFakeCaps { return zapFakeCaps{} }

func (zapFakeDriver) Acquire(context.Context, string, time.Duration) (driver.AcquireResult, error) {
	return driver.AcquireResult{Acquired: true, LockID: zapFakeID}, nil
}

func (zapFakeDriver) Release(context.Context, string, string) (driver.ReleaseResult, error) {
	return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
}

func TestTelemetryZapObserverWithGuard(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	g := syncguard.New(zapFakeDriver{}, syncguard.WithObserver(zapobserver.New(zap.New(core))))
	l, err := g.TryAcquire(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Release(context.Background()); err != nil || ok {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	entries := logs.FilterField(zap.String("lockIdHash", driver.HashKey(zapFakeID))).FilterField(zap.String("reason", "not-found")).All()
	if len(entries) != 1 {
		t.Fatalf("entries = %+v", logs.All())
	}
}

func BenchmarkTelemetryZapObserverDisabled(b *testing.B) {
	o := zapobserver.New(zap.NewNop())
	e := syncguard.Event{Type: syncguard.EventAcquire, Result: syncguard.ResultOK, KeyHash: "kh"}
	b.ReportAllocs()
	for b.Loop() {
		o.OnEvent(e)
	}
}
