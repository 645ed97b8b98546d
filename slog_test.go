package syncguard

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

func TestSlogObserver(t *testing.T) {
	tests := []struct {
		name string
		// level is the handler's level (nil: Debug).
		level slog.Leveler
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
			event: Event{Type: EventRelease, Result: ResultFail, LockIDHash: "ih", Reason: driver.DetailExpired},
			want: map[string]any{
				"level": "DEBUG", "msg": "syncguard release",
				"type": "release", "result": "fail", "lockIdHash": "ih", "reason": "expired", "latency": float64(0),
			},
		},
		{
			name:  "error-warn-with-code",
			event: Event{Type: EventExtend, Result: ResultError, LockIDHash: "ih", Code: driver.NetworkTimeout},
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
			name:  "lookup-error-warn",
			level: slog.LevelWarn,
			event: Event{Type: EventLookup, Result: ResultError, Code: driver.Internal},
			want: map[string]any{
				"level": "WARN", "msg": "syncguard lookup",
				"type": "lookup", "result": "error", "code": "Internal", "latency": float64(0),
			},
		},
		{
			name:  "below-level-not-logged",
			level: slog.LevelInfo,
			event: Event{Type: EventLookup, Result: ResultOK},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			var level slog.Leveler = slog.LevelDebug
			if tt.level != nil {
				level = tt.level
			}
			h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{
				Level: level,
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				},
			})
			NewSlogObserver(slog.New(h)).OnEvent(tt.event)
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
	o.OnEvent(Event{Type: EventAcquire, Result: ResultError, Code: driver.Aborted})
	if !bytes.Contains(buf.Bytes(), []byte("code=Aborted")) {
		t.Errorf("default logger got %q", buf.String())
	}
}

func TestSlogObserverOfGuard(t *testing.T) {
	const key = "slog-secret-key"
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := newFakeGuard(newFakeDriver(), WithObserver(NewSlogObserver(l)))
	lease, err := g.TryAcquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	lease.Close()
	out := buf.String()
	for _, want := range []string{"msg=\"syncguard acquire\"", "msg=\"syncguard release\"", "keyHash=" + driver.HashKey(key), "lockIdHash=" + driver.HashKey(fakeLockID(1))} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %s", out, want)
		}
	}
	if strings.Contains(out, key) || strings.Contains(out, fakeLockID(1)) {
		t.Errorf("log %q leaks the raw key or lock ID", out)
	}
}
