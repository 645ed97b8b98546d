package syncguard_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
)

// An observer sees one event per backend call of the Guard and its leases.
// Keys and lock IDs appear as hashes; WithRawEvents adds the raw values to
// the events it selects.
func ExampleWithObserver() {
	show := syncguard.ObserverFunc(func(e syncguard.Event) {
		fmt.Print(e.Type, " ", e.Result)
		if e.Reason != "" {
			fmt.Print(" reason=", e.Reason)
		}
		if e.Key != "" {
			fmt.Print(" key=", e.Key)
		}
		fmt.Println()
	})
	g := syncguard.New(memory.New(), syncguard.WithObserver(show),
		// Raw keys only for failed acquisitions (say, to see what is contended).
		syncguard.WithRawEvents(func(e syncguard.Event) bool {
			return e.Type == syncguard.EventAcquire && e.Result == syncguard.ResultFail
		}))

	ctx := context.Background()
	first, _ := g.TryAcquire(ctx, "resource:123")
	_, _ = g.TryAcquire(ctx, "resource:123")
	first.Close()
	_, _ = g.IsLocked(ctx, "resource:123")
	// Output:
	// acquire ok
	// acquire fail reason=locked key=resource:123
	// release ok
	// lookup fail
}

func ExampleNewSlogObserver() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "latency" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	})
	g := syncguard.New(memory.New(), syncguard.WithObserver(syncguard.NewSlogObserver(slog.New(h))))

	ctx := context.Background()
	_, _ = g.TryAcquire(ctx, "resource:123")
	_, _ = g.TryAcquire(ctx, "resource:123")
	// Output:
	// level=DEBUG msg="syncguard acquire" type=acquire result=ok keyHash=f52f328d6111ae89dbcfcb99
	// level=DEBUG msg="syncguard acquire" type=acquire result=fail keyHash=f52f328d6111ae89dbcfcb99 reason=locked
}
