package syncguard

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSlogObserver(t *testing.T) {
	tests := []struct {
		name  string
		opts  []SlogOption
		event Event
		want  map[string]any // nil: nothing logged
	}{
		{
			name:  "case145/acquire-ok-debug",
			event: Event{Type: EventAcquire, Result: ResultOK, KeyHash: "kh", Latency: 3 * time.Millisecond},
			want: map[string]any{
				"level": "DEBUG", "msg": "syncguard acquire",
				"type": "acquire", "result": "ok", "keyHash": "kh", "latency": float64(3 * time.Millisecond),
			},
		},
		{
			name:  "case147/release-fail-reason",
			event: Event{Type: EventRelease, Result: ResultFail, LockIDHash: "ih", Reason: DetailExpired},
			want: map[string]any{
				"level": "DEBUG", "msg": "syncguard release",
				"type": "release", "result": "fail", "lockIdHash": "ih", "reason": "expired", "latency": float64(0),
			},
		},
		{
			name:  "error-warn-with-code",
			event: Event{Type: EventExtend, Result: ResultError, LockIDHash: "ih", Code: NetworkTimeout},
			want: map[string]any{
				"level": "WARN", "msg": "syncguard extend",
				"type": "extend", "result": "error", "lockIdHash": "ih", "code": "NetworkTimeout", "latency": float64(0),
			},
		},
		{
			name:  "lost-warn",
			event: Event{Type: EventLost, Result: ResultFail, KeyHash: "kh", Reason: "extend failed"},
			want: map[string]any{
				"level": "WARN", "msg": "syncguard lost",
				"type": "lost", "result": "fail", "keyHash": "kh", "reason": "extend failed", "latency": float64(0),
			},
		},
		{
			name:  "case146/raw-fields",
			event: Event{Type: EventAcquire, Result: ResultOK, KeyHash: "kh", Key: "k", LockID: "id"},
			want: map[string]any{
				"level": "DEBUG", "msg": "syncguard acquire",
				"type": "acquire", "result": "ok", "keyHash": "kh", "key": "k", "lockId": "id", "latency": float64(0),
			},
		},
		{
			name:  "custom-levels",
			opts:  []SlogOption{SlogLevels(slog.LevelInfo, slog.LevelError)},
			event: Event{Type: EventLookup, Result: ResultError, Code: Internal},
			want: map[string]any{
				"level": "ERROR", "msg": "syncguard lookup",
				"type": "lookup", "result": "error", "code": "Internal", "latency": float64(0),
			},
		},
		{
			name:  "below-level-not-logged",
			opts:  []SlogOption{SlogLevels(slog.LevelDebug-4, slog.LevelWarn)},
			event: Event{Type: EventIsLocked, Result: ResultOK},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				},
			})
			NewSlogObserver(slog.New(h), tt.opts...).OnEvent(tt.event)
			if tt.want == nil {
				if buf.Len() != 0 {
					t.Fatalf("logged %q, want nothing", buf.String())
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("bad log line %q: %v", buf.String(), err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("log record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlogObserverNilLoggerUsesDefault(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	o := NewSlogObserver(nil) // resolved per event, so setting the default later works
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	o.OnEvent(Event{Type: EventAcquire, Result: ResultError, Code: Aborted})
	if !bytes.Contains(buf.Bytes(), []byte("code=Aborted")) {
		t.Errorf("default logger got %q", buf.String())
	}
}

func TestSlogObserverWithTelemetry(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := &telemetryFakeDriver{acquire: AcquireResult{Acquired: true, LockID: telemetryTestID}}
	d := WithTelemetry[telemetryFakeCaps](fake, NewSlogObserver(l))
	if _, err := d.Acquire(context.Background(), telemetryTestKey, time.Second); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !bytes.Contains(buf.Bytes(), []byte("keyHash="+HashKey(telemetryTestKey))) {
		t.Errorf("log %q lacks the key hash", out)
	}
	if bytes.Contains(buf.Bytes(), []byte(telemetryTestKey)) || bytes.Contains(buf.Bytes(), []byte(telemetryTestID)) {
		t.Errorf("log %q leaks the raw key or lock ID", out)
	}
}
