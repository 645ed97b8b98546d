package syncguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// TestSlogSourceIsTheUsersCode: with AddSource, each record's source is the
// line of user code that called into SyncGuard (this file), never slog.go.
func TestSlogSourceIsTheUsersCode(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true, Level: slog.LevelDebug})
	g := syncguard.New(memory.New(), syncguard.WithObserver(syncguard.NewSlogObserver(slog.New(h))))
	ctx := context.Background()

	_, file, line, _ := runtime.Caller(0)
	l, err := g.TryAcquire(ctx, "slog:source") // line+1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Release(ctx); err != nil { // line+5
		t.Fatal(err)
	}

	type site struct {
		Msg  string
		File string
		Line int
	}
	var got []site
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var rec struct {
			Msg    string `json:"msg"`
			Source struct {
				File string `json:"file"`
				Line int    `json:"line"`
			} `json:"source"`
		}
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		got = append(got, site{rec.Msg, filepath.Base(rec.Source.File), rec.Source.Line})
	}
	base := filepath.Base(file)
	want := []site{{"syncguard acquire", base, line + 1}, {"syncguard release", base, line + 5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}
