package syncguard_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/syncguard/syncguard"
)

// telemetryExampleCaps and telemetryExampleDriver stand in for a real
// driver (such as drivers/memory) in the examples below: a one-process lock
// table without expiry. Methods the examples do not use come from the
// embedded nil Backend.
type telemetryExampleCaps struct{}

func (telemetryExampleCaps) Name() string { return "example" }

type telemetryExampleDriver struct {
	syncguard.Backend
	mu    sync.Mutex
	held  map[string]string // key → lock ID
	fence syncguard.Fence
}

func (d *telemetryExampleDriver) Capabilities() telemetryExampleCaps { return telemetryExampleCaps{} }

func (d *telemetryExampleDriver) Acquire(_ context.Context, key string, ttl time.Duration) (syncguard.AcquireResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.held[key]; ok {
		return syncguard.AcquireResult{Reason: syncguard.ReasonLocked}, nil
	}
	if d.held == nil {
		d.held = map[string]string{}
	}
	id := syncguard.NewLockID()
	d.held[key] = id
	d.fence++
	return syncguard.AcquireResult{Acquired: true, LockID: id, Fence: d.fence}, nil
}

func (d *telemetryExampleDriver) Release(_ context.Context, lockID string) (syncguard.ReleaseResult, error) {
	if err := syncguard.ValidateLockID(lockID); err != nil {
		return syncguard.ReleaseResult{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, id := range d.held {
		if id == lockID {
			delete(d.held, k)
			return syncguard.ReleaseResult{OK: true}, nil
		}
	}
	return syncguard.ReleaseResult{Detail: syncguard.DetailNotFound}, nil
}

func ExampleWithTelemetry() {
	ctx := context.Background()
	show := syncguard.ObserverFunc(func(e syncguard.Event) {
		fmt.Print(e.Type, " ", e.Result)
		if e.Reason != "" {
			fmt.Print(" reason=", e.Reason)
		}
		if e.Code != 0 {
			fmt.Print(" code=", e.Code)
		}
		if e.Key != "" {
			fmt.Print(" key=", e.Key)
		}
		fmt.Println()
	})
	// Raw keys only for failed acquisitions (say, to see what is contended).
	d := syncguard.WithTelemetry(&telemetryExampleDriver{}, show,
		syncguard.IncludeRawFunc(func(e syncguard.Event) bool {
			return e.Type == syncguard.EventAcquire && e.Result == syncguard.ResultFail
		}))

	first, _ := d.Acquire(ctx, "resource:123", 30*time.Second)
	_, _ = d.Acquire(ctx, "resource:123", 30*time.Second)
	_, _ = d.Release(ctx, first.LockID)
	_, _ = d.Release(ctx, first.LockID)
	_, err := d.Release(ctx, "not-a-lock-id")
	fmt.Println(syncguard.CodeOf(err))
	// Output:
	// acquire ok
	// acquire fail reason=locked key=resource:123
	// release ok
	// release fail reason=not-found
	// release error code=InvalidArgument
	// InvalidArgument
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
	obs := syncguard.NewSlogObserver(slog.New(h))
	d := syncguard.WithTelemetry(&telemetryExampleDriver{}, obs)

	ctx := context.Background()
	_, _ = d.Acquire(ctx, "resource:123", 30*time.Second)
	_, _ = d.Acquire(ctx, "resource:123", 30*time.Second)
	_, _ = d.Release(ctx, "AAAAAAAAAAAAAAAAAAAAAA")
	// Output:
	// level=DEBUG msg="syncguard acquire" type=acquire result=ok keyHash=f52f328d6111ae89dbcfcb99
	// level=DEBUG msg="syncguard acquire" type=acquire result=fail keyHash=f52f328d6111ae89dbcfcb99 reason=locked
	// level=DEBUG msg="syncguard release" type=release result=fail lockIdHash=8a5bdb4cc15164126c6ef266 reason=not-found
}
