package syncguard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/syncguard/syncguard/driver"
)

// acquireLease acquires key through g (one attempt, no auto-extend unless
// opts say so) and fails the test on error.
func acquireLease(t *testing.T, g *Guard[fakeCaps], key string, opts ...AcquireOption) *Lease[fakeCaps] {
	t.Helper()
	l, err := g.TryAcquire(context.Background(), key, opts...)
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	return l
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// ---------------------------------------------------------------------------
// Section J: lease handle and disposal
// ---------------------------------------------------------------------------

func TestLeaseHandle(t *testing.T) {
	t.Run("case125_handle_fields", func(t *testing.T) {
		f := newFakeDriver().onAcquire(acquiredStep(42))
		g := newFakeGuard(f)
		l := acquireLease(t, g, "cafe\u0301")
		defer l.Close()
		got := struct {
			Key, LockID string
			Fence       Fence
			ExpiresAtMs int64
			ExpiresAt   time.Time
		}{l.Key(), l.LockID(), FenceOf(l), l.ExpiresAtMs(), l.ExpiresAt()}
		want := got
		want.Key, want.LockID, want.Fence, want.ExpiresAtMs = "café", fakeLockID(42), 42, fakeExpiry(42)
		want.ExpiresAt = time.UnixMilli(fakeExpiry(42))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("fields (-want +got):\n%s", diff)
		}
		if isClosed(l.Lost()) || l.Context().Err() != nil {
			t.Error("fresh lease is lost or cancelled")
		}
	})

	t.Run("case126_manual_release_and_extend", func(t *testing.T) {
		type ctxKey struct{}
		tests := []struct {
			name    string
			release driver.ReleaseResult
		}{
			{"release_ok", driver.ReleaseResult{OK: true}},
			{"release_not_ok_passed_through", driver.ReleaseResult{Detail: driver.DetailExpired}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFakeDriver().
					onRelease(fakeStep[driver.ReleaseResult]{res: tc.release}).
					onExtend(
						fakeStep[driver.ExtendResult]{res: driver.ExtendResult{OK: true, ExpiresAtMs: 123_456}},
						fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailNotFound}},
					)
				g := newFakeGuard(f)
				l := acquireLease(t, g, "k126")
				ectx := context.WithValue(context.Background(), ctxKey{}, "extend")
				ok, err := l.Extend(ectx, 15*time.Second)
				if !ok || err != nil {
					t.Fatalf("Extend = %v, %v", ok, err)
				}
				if l.ExpiresAtMs() != 123_456 {
					t.Errorf("ExpiresAtMs = %d after extend", l.ExpiresAtMs())
				}
				rctx := context.WithValue(context.Background(), ctxKey{}, "release")
				ok, err = l.Release(rctx)
				if ok != tc.release.OK || err != nil {
					t.Errorf("Release = %v, %v; want %v, nil", ok, err, tc.release.OK)
				}
				// Extend after Release still delegates; the backend's answer
				// is returned and a released lease is not marked lost.
				ok, err = l.Extend(ectx, 15*time.Second)
				if ok || err != nil {
					t.Errorf("Extend after release = %v, %v", ok, err)
				}
				if isClosed(l.Lost()) {
					t.Error("released lease marked lost")
				}
				rel, ext := f.releases(), f.extends()
				if len(rel) != 1 || rel[0].arg != fakeLockID(1) || rel[0].ctx != rctx {
					t.Errorf("Release calls = %+v", rel)
				}
				if len(ext) != 2 {
					t.Fatalf("Extend calls = %d, want 2", len(ext))
				}
				for _, c := range ext {
					if c.arg != fakeLockID(1) || c.ttl != 15*time.Second || c.ctx != ectx {
						t.Errorf("Extend call %+v", c)
					}
				}
			})
		}
	})

	t.Run("extend_error_returned", func(t *testing.T) {
		boom := driver.NewError(driver.ServiceUnavailable, "down")
		f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{err: boom})
		l := acquireLease(t, newFakeGuard(f), "k")
		defer l.Close()
		if ok, err := l.Extend(context.Background(), time.Second); ok || err != boom {
			t.Errorf("Extend = %v, %v", ok, err)
		}
		if isClosed(l.Lost()) {
			t.Error("transient extend error marked the lease lost")
		}
		var nilCtx context.Context
		if ok, err := l.Extend(nilCtx, time.Second); ok || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Extend(nil ctx) = %v, %v", ok, err)
		}
		if ok, err := l.Release(nilCtx); ok || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Release(nil ctx) = %v, %v", ok, err)
		}
		if n := len(f.releases()); n != 0 {
			t.Errorf("Release(nil ctx) reached the backend")
		}
	})

	t.Run("manual_extend_false_marks_lost", func(t *testing.T) {
		obs := &eventRecorder{}
		f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailExpired}})
		g := newFakeGuard(f, WithObserver(obs))
		l := acquireLease(t, g, "k")
		ok, err := l.Extend(context.Background(), time.Second)
		if ok || err != nil {
			t.Fatalf("Extend = %v, %v", ok, err)
		}
		if !isClosed(l.Lost()) {
			t.Fatal("Lost() not closed")
		}
		cause := context.Cause(l.Context())
		if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), driver.DetailExpired) {
			t.Errorf("cause = %v", cause)
		}
		// A second false extend does not report again.
		_, _ = l.Extend(context.Background(), time.Second)
		l.Close()
		var lost []Event
		for _, e := range obs.snapshot() {
			if e.Type == EventLost {
				lost = append(lost, e)
			}
		}
		want := []Event{{Type: EventLost, Result: ResultFail, KeyHash: driver.HashKey("k"), LockIDHash: driver.HashKey(fakeLockID(1)),
			Reason: "extend found the lock gone (expired)"}}
		if diff := cmp.Diff(want, lost); diff != "" {
			t.Errorf("lost events (-want +got):\n%s", diff)
		}
		// Released normally afterwards: still one backend release.
		if n := len(f.releases()); n != 1 {
			t.Errorf("Release calls = %d", n)
		}
	})

	t.Run("release_cancels_context_but_is_not_loss", func(t *testing.T) {
		l := acquireLease(t, newFakeGuard(newFakeDriver()), "k")
		if _, err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		if context.Cause(l.Context()) != context.Canceled {
			t.Errorf("cause = %v, want context.Canceled", context.Cause(l.Context()))
		}
		if isClosed(l.Lost()) {
			t.Error("released lease reported lost")
		}
	})

	t.Run("context_follows_acquire_ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		l, err := newFakeGuard(newFakeDriver()).Acquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cancel()
		if l.Context().Err() == nil {
			t.Error("lease context not cancelled with the Acquire ctx")
		}
	})
}

func TestLeaseCloseAndIdempotency(t *testing.T) {
	t.Run("case127_close_releases_never_fails", func(t *testing.T) {
		for _, st := range []fakeStep[driver.ReleaseResult]{
			{res: driver.ReleaseResult{OK: true}},
			{err: driver.NewError(driver.Internal, "down")},
			{err: errors.New("plain")},
			{panicVal: "driver panic"},
		} {
			rec := &releaseErrRecorder{}
			f := newFakeDriver().onRelease(st)
			l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
			l.Close() // must not panic
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d, want 1", n)
			}
			if rel := f.releases()[0]; !rel.hasDeadline || rel.deadline.After(rel.at.Add(defaultReleaseTimeout)) {
				t.Errorf("Close released with deadline %v (set: %v), want the release timeout", rel.deadline.Sub(rel.at), rel.hasDeadline)
			}
		}
	})

	t.Run("case128_idempotency", func(t *testing.T) {
		type op func(l *Lease[fakeCaps]) (bool, bool) // (ok, hasOK)
		release := func(l *Lease[fakeCaps]) (bool, bool) {
			ok, err := l.Release(context.Background())
			if err != nil {
				t.Errorf("Release: %v", err)
			}
			return ok, true
		}
		closeOp := func(l *Lease[fakeCaps]) (bool, bool) { l.Close(); return false, false }
		repeat := func(o op, n int) []op {
			ops := make([]op, n)
			for i := range ops {
				ops[i] = o
			}
			return ops
		}
		tests := []struct {
			name   string
			ops    []op
			wantOK []bool
		}{
			{"release_x3", repeat(release, 3), []bool{true, false, false}},
			{"close_x3", repeat(closeOp, 3), nil},
			{"release_then_close", []op{release, closeOp}, []bool{true}},
			{"close_then_release", []op{closeOp, release}, []bool{false}},
			{"close_x10", repeat(closeOp, 10), nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := newFakeDriver()
				l := acquireLease(t, newFakeGuard(f), "k")
				var oks []bool
				for _, o := range tc.ops {
					if ok, has := o(l); has {
						oks = append(oks, ok)
					}
				}
				if diff := cmp.Diff(tc.wantOK, oks); diff != "" {
					t.Errorf("results (-want +got):\n%s", diff)
				}
				if n := len(f.releases()); n != 1 {
					t.Errorf("Release calls = %d, want 1", n)
				}
			})
		}
	})

	t.Run("case129_concurrency", func(t *testing.T) {
		ms := time.Millisecond
		tests := []struct {
			name         string
			releaseDelay time.Duration
			// starts are the offsets of the concurrent operations; "R" is a
			// Release, "C" a Close.
			ops       []string
			starts    []time.Duration
			wantRelOK bool
		}{
			{"three_concurrent_closes", 100 * ms, []string{"C", "C", "C"}, []time.Duration{0, 0, 0}, false},
			{"second_close_10ms_into_release", 100 * ms, []string{"C", "C"}, []time.Duration{0, 10 * ms}, false},
			{"concurrent_release_and_close", 100 * ms, []string{"R", "C"}, []time.Duration{0, 1 * ms}, true},
			{"closes_50ms_into_200ms_release", 200 * ms, []string{"C", "C", "C"}, []time.Duration{0, 50 * ms, 50 * ms}, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					rec := &releaseErrRecorder{}
					f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}, delay: tc.releaseDelay})
					l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
					start := time.Now()
					var wg sync.WaitGroup
					var relOK bool
					for i, op := range tc.ops {
						wg.Go(func() {
							time.Sleep(tc.starts[i])
							if op == "R" {
								ok, err := l.Release(context.Background())
								if err != nil {
									t.Errorf("Release: %v", err)
								}
								relOK = ok
							} else {
								l.Close()
							}
							if d := time.Since(start); d != tc.releaseDelay {
								t.Errorf("%s returned at %v, want %v (after the release)", op, d, tc.releaseDelay)
							}
						})
					}
					wg.Wait()
					if n := len(f.releases()); n != 1 {
						t.Errorf("Release calls = %d, want 1", n)
					}
					if tc.wantRelOK && !relOK {
						t.Error("Release result not OK")
					}
					if errs, _, _ := rec.snapshot(); len(errs) != 0 {
						t.Errorf("callback called: %v", errs)
					}
				})
			})
		}
	})

	t.Run("case130_close_waits_for_inflight_release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}, delay: 100 * time.Millisecond})
			l := acquireLease(t, newFakeGuard(f), "k")
			start := time.Now()
			var relOK bool
			var wg sync.WaitGroup
			wg.Go(func() { relOK, _ = l.Release(context.Background()) })
			time.Sleep(10 * time.Millisecond)
			l.Close()
			if d := time.Since(start); d != 100*time.Millisecond {
				t.Errorf("Close returned at %v, want 100ms", d)
			}
			wg.Wait()
			if !relOK || len(f.releases()) != 1 {
				t.Errorf("Release OK = %v, calls = %d", relOK, len(f.releases()))
			}
		})
	})

	t.Run("case131_close_during_failing_release", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := driver.NewError(driver.Internal, "down")
			rec := &releaseErrRecorder{}
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: boom, delay: 50 * time.Millisecond})
			l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
			var relErr error
			var wg sync.WaitGroup
			wg.Go(func() { _, relErr = l.Release(context.Background()) })
			time.Sleep(10 * time.Millisecond)
			l.Close()
			wg.Wait()
			if relErr != boom {
				t.Errorf("Release error = %v, want %v", relErr, boom)
			}
			if errs, _, _ := rec.snapshot(); len(errs) != 0 {
				t.Errorf("callback called: %v", errs)
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d", n)
			}
		})
	})

	t.Run("case132_immediate_failure", func(t *testing.T) {
		boom := driver.NewError(driver.Internal, "down")
		rec := &releaseErrRecorder{}
		f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: boom})
		l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
		if ok, err := l.Release(context.Background()); ok || err != boom {
			t.Errorf("Release = %v, %v", ok, err)
		}
		l.Close()
		if ok, err := l.Release(context.Background()); ok || err != nil {
			t.Errorf("second Release = %v, %v", ok, err)
		}
		if n := len(f.releases()); n != 1 {
			t.Errorf("Release calls = %d, want 1", n)
		}
		if errs, _, _ := rec.snapshot(); len(errs) != 0 {
			t.Errorf("manual release error sent to the callback: %v", errs)
		}
	})

	t.Run("case133_disposal_errors_reach_callback_once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := driver.NewError(driver.Internal, "down")
			rec := &releaseErrRecorder{}
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: boom, delay: 20 * time.Millisecond})
			l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "cafe\u0301")
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(l.Close)
			}
			wg.Wait()
			errs, infos, _ := rec.snapshot()
			if len(errs) != 1 || errs[0] != boom {
				t.Fatalf("callback errors = %v, want exactly [%v]", errs, boom)
			}
			want := releaseErrInfo{LockID: fakeLockID(1), Key: "café"}
			if diff := cmp.Diff(want, infos[0]); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d", n)
			}
		})
	})

	t.Run("case133_callback_variants", func(t *testing.T) {
		tests := []struct {
			name      string
			release   fakeStep[driver.ReleaseResult]
			callback  func(error, string, string)
			wantLog   bool
			wantInErr string
		}{
			{name: "non_error_value_normalised", release: fakeStep[driver.ReleaseResult]{panicVal: 12345}, wantLog: true, wantInErr: "12345"},
			{name: "panicking_callback_swallowed_nothing_logged", release: fakeStep[driver.ReleaseResult]{err: errors.New("x")},
				callback: func(error, string, string) { panic("callback") }},
			{name: "custom_callback_replaces_default", release: fakeStep[driver.ReleaseResult]{err: errors.New("x")},
				callback: func(error, string, string) {}},
			{name: "nothing_logged_on_success", release: fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}}},
			{name: "nothing_logged_on_not_ok", release: fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{Detail: driver.DetailExpired}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				logger, buf := bufLogger()
				opts := []Option{WithLogger(logger)}
				if tc.callback != nil {
					opts = append(opts, WithOnReleaseError(tc.callback))
				}
				l := acquireLease(t, newFakeGuard(newFakeDriver().onRelease(tc.release), opts...), "k")
				l.Close()
				out := buf.String()
				if got := out != ""; got != tc.wantLog {
					t.Fatalf("logged %q, want log: %v", out, tc.wantLog)
				}
				if !strings.Contains(out, tc.wantInErr) {
					t.Errorf("log %q lacks %q", out, tc.wantInErr)
				}
			})
		}
	})

	t.Run("case134_failed_acquisition_is_inert", func(t *testing.T) {
		f := newFakeDriver().onAcquire(contendedStep())
		l, err := newFakeGuard(f).TryAcquire(context.Background(), "k")
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("TryAcquire = %v", err)
		}
		for range 2 {
			l.Close()
			if ok, err := l.Extend(context.Background(), time.Second); ok || err != nil {
				t.Errorf("Extend = %v, %v", ok, err)
			}
			if ok, err := l.Release(context.Background()); ok || err != nil {
				t.Errorf("Release = %v, %v", ok, err)
			}
			l.Close()
		}
		if r, e := len(f.releases()), len(f.extends()); r+e != 0 {
			t.Errorf("backend calls: %d releases, %d extends", r, e)
		}
	})
}

func TestLeaseNil(t *testing.T) {
	var l *Lease[fakeCaps]
	var nilCtx context.Context
	got := struct {
		Key, LockID string
		ExpiresAtMs int64
		ExpiresAt   time.Time
		Fence       Fence
	}{l.Key(), l.LockID(), l.ExpiresAtMs(), l.ExpiresAt(), FenceOf(l)}
	if diff := cmp.Diff(got, struct {
		Key, LockID string
		ExpiresAtMs int64
		ExpiresAt   time.Time
		Fence       Fence
	}{}); diff != "" {
		t.Errorf("nil lease fields (-zero +got):\n%s", diff)
	}
	if !isClosed(l.Lost()) {
		t.Error("nil lease Lost() not closed")
	}
	if l.Context().Err() == nil {
		t.Error("nil lease Context() not cancelled")
	}
	for _, ctx := range []context.Context{context.Background(), nilCtx} {
		if ok, err := l.Release(ctx); ok || err != nil {
			t.Errorf("Release = %v, %v", ok, err)
		}
		if ok, err := l.Extend(ctx, time.Second); ok || err != nil {
			t.Errorf("Extend = %v, %v", ok, err)
		}
	}
	l.Close()
}

// TestLeaseCloseTimeout: Close releases on a context detached from the
// lease's, bounded by the release timeout (WithReleaseTimeout, default
// 5s).
func TestLeaseCloseTimeout(t *testing.T) {
	ms := time.Millisecond
	wantInfo := releaseErrInfo{LockID: fakeLockID(1), Key: "k"}
	t.Run("case135_release_timeout_ends_close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &releaseErrRecorder{}
			// The release blocks until its ctx ends.
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{delay: time.Hour})
			l := acquireLease(t, newFakeGuard(f, WithReleaseTimeout(100*ms), WithOnReleaseError(rec.record)), "k")
			start := time.Now()
			l.Close()
			if d := time.Since(start); d != 100*ms {
				t.Errorf("Close returned at %v, want 100ms", d)
			}
			errs, infos, _ := rec.snapshot()
			if len(errs) != 1 {
				t.Fatalf("callback calls = %d, want 1", len(errs))
			}
			requireLockErr(t, errs[0], driver.NetworkTimeout)
			if diff := cmp.Diff(wantInfo, infos[0]); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
			rel := f.releases()
			if len(rel) < 1 || !rel[0].hasDeadline || rel[0].deadline.Sub(rel[0].at) != 100*ms {
				t.Errorf("release call %+v, want one with a 100ms deadline", rel)
			}
			// The timed-out release is retried in the background
			// until the lease expires: let those retries end.
			time.Sleep(2 * time.Hour)
			synctest.Wait()
			if errs, _, _ := rec.snapshot(); len(errs) != 1 {
				t.Errorf("callback calls after the background retries = %d, want 1", len(errs))
			}
		})
	})

	t.Run("case136_fast_release_with_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &releaseErrRecorder{}
			f := newFakeDriver()
			l := acquireLease(t, newFakeGuard(f, WithReleaseTimeout(time.Second), WithOnReleaseError(rec.record)), "k")
			start := time.Now()
			l.Close()
			if d := time.Since(start); d >= 100*ms {
				t.Errorf("Close took %v", d)
			}
			time.Sleep(2 * time.Second)
			if errs, _, _ := rec.snapshot(); len(errs) != 0 {
				t.Errorf("callback called: %v", errs)
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d", n)
			}
		})
	})

	t.Run("case137_default_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &releaseErrRecorder{}
			f := newFakeDriver()
			l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
			l.Close()
			rel := f.releases()
			if len(rel) != 1 || !rel[0].hasDeadline || rel[0].deadline.Sub(rel[0].at) != defaultReleaseTimeout {
				t.Errorf("release calls %+v, want one with the default %v deadline", rel, defaultReleaseTimeout)
			}
			if errs, _, _ := rec.snapshot(); len(errs) != 0 {
				t.Errorf("callback called: %v", errs)
			}
		})
		// Manual Release with a release timeout configured uses the
		// caller's ctx only.
		f2 := newFakeDriver()
		l2 := acquireLease(t, newFakeGuard(f2, WithReleaseTimeout(time.Second)), "k")
		ctx := context.Background()
		if ok, err := l2.Release(ctx); !ok || err != nil {
			t.Fatalf("Release = %v, %v", ok, err)
		}
		if rel := f2.releases(); len(rel) != 1 || rel[0].ctx != ctx || rel[0].hasDeadline {
			t.Errorf("manual release call %+v, want the caller's ctx", rel)
		}
	})

	t.Run("case138_failure_before_timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := driver.NewError(driver.AuthFailed, "denied")
			rec := &releaseErrRecorder{}
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{err: boom})
			l := acquireLease(t, newFakeGuard(f, WithReleaseTimeout(5*time.Second), WithOnReleaseError(rec.record)), "k")
			start := time.Now()
			l.Close()
			if d := time.Since(start); d != 0 {
				t.Errorf("Close took %v", d)
			}
			time.Sleep(10 * time.Second)
			errs, infos, _ := rec.snapshot()
			if len(errs) != 1 || errs[0] != boom {
				t.Fatalf("callback errors = %v, want [%v]", errs, boom)
			}
			if diff := cmp.Diff(wantInfo, infos[0]); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("second_close_during_release_waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &releaseErrRecorder{}
			f := newFakeDriver().onRelease(fakeStep[driver.ReleaseResult]{res: driver.ReleaseResult{OK: true}, delay: 100 * ms})
			l := acquireLease(t, newFakeGuard(f, WithOnReleaseError(rec.record)), "k")
			start := time.Now()
			go l.Close()
			synctest.Wait() // the first Close is in its release
			l.Close()       // waits for the in-flight release, reports nothing
			if d := time.Since(start); d != 100*ms {
				t.Errorf("second Close returned at %v, want 100ms", d)
			}
			if errs, _, _ := rec.snapshot(); len(errs) != 0 {
				t.Errorf("callback calls = %d, want 0", len(errs))
			}
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d, want 1", n)
			}
		})
	})
}

// ---------------------------------------------------------------------------
// Auto-extend heartbeat
// ---------------------------------------------------------------------------

func TestLeaseHeartbeat(t *testing.T) {
	const ttl = 3 * time.Second
	sec := time.Second
	lostEvents := func(obs *eventRecorder) []Event {
		var out []Event
		for _, e := range obs.snapshot() {
			if e.Type == EventLost {
				out = append(out, e)
			}
		}
		return out
	}

	t.Run("extends_every_ttl_third", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver()
			g := newFakeGuard(f)
			start := time.Now()
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			time.Sleep(3500 * time.Millisecond)
			synctest.Wait()
			var offsets []time.Duration
			for _, c := range f.extends() {
				offsets = append(offsets, c.at.Sub(start))
				if c.arg != fakeLockID(1) || c.ttl != ttl {
					t.Errorf("extend call %+v", c)
				}
			}
			if diff := cmp.Diff([]time.Duration{sec, 2 * sec, 3 * sec}, offsets); diff != "" {
				t.Errorf("extend offsets (-want +got):\n%s", diff)
			}
			if want := start.Add(3 * sec).Add(ttl).UnixMilli(); l.ExpiresAtMs() != want {
				t.Errorf("ExpiresAtMs = %d, want %d", l.ExpiresAtMs(), want)
			}
			if ok, err := l.Release(context.Background()); !ok || err != nil {
				t.Fatalf("Release = %v, %v", ok, err)
			}
			if !isClosed(l.hbDone) {
				t.Error("heartbeat goroutine still running after Release")
			}
			time.Sleep(10 * sec)
			if n := len(f.extends()); n != 3 {
				t.Errorf("Extend calls after Release = %d, want 3", n)
			}
			if isClosed(l.Lost()) {
				t.Error("lease lost")
			}
		})
	})

	t.Run("false_extend_marks_lost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			obs := &eventRecorder{}
			f := newFakeDriver().onExtend(
				fakeStep[driver.ExtendResult]{res: driver.ExtendResult{OK: true, ExpiresAtMs: 1}},
				fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailNotFound}},
			)
			g := newFakeGuard(f, WithObserver(obs))
			start := time.Now()
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			<-l.Lost()
			if d := time.Since(start); d != 2*sec {
				t.Errorf("lost at %v, want 2s", d)
			}
			<-l.Context().Done()
			cause := context.Cause(l.Context())
			if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), driver.DetailNotFound) {
				t.Errorf("cause = %v", cause)
			}
			synctest.Wait()
			if !isClosed(l.hbDone) {
				t.Error("heartbeat still running after loss")
			}
			want := []Event{{Type: EventLost, Result: ResultFail, KeyHash: driver.HashKey("k"), LockIDHash: driver.HashKey(fakeLockID(1)),
				Reason: "auto-extend found the lock gone (not-found)"}}
			if diff := cmp.Diff(want, lostEvents(obs)); diff != "" {
				t.Errorf("lost events (-want +got):\n%s", diff)
			}
			time.Sleep(10 * sec)
			if n := len(f.extends()); n != 2 {
				t.Errorf("Extend calls = %d, want 2", n)
			}
			l.Close()
			if n := len(f.releases()); n != 1 {
				t.Errorf("Release calls = %d", n)
			}
		})
	})

	t.Run("transient_errors_retried_until_deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := driver.NewError(driver.ServiceUnavailable, "down")
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{err: boom})
			g := newFakeGuard(f)
			start := time.Now()
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			<-l.Lost()
			if d := time.Since(start); d != ttl {
				t.Errorf("lost at %v, want at the local deadline %v", d, ttl)
			}
			cause := context.Cause(l.Context())
			if !errors.Is(cause, ErrLockLost) || !errors.Is(cause, boom) {
				t.Errorf("cause = %v, want ErrLockLost wrapping the last error", cause)
			}
			var offsets []time.Duration
			for _, c := range f.extends() {
				offsets = append(offsets, c.at.Sub(start))
			}
			// First at TTL/3, then every max(TTL/12, 10ms) until the deadline.
			var want []time.Duration
			for d := sec; d <= ttl; d += 250 * time.Millisecond {
				want = append(want, d)
			}
			if diff := cmp.Diff(want, offsets); diff != "" {
				t.Errorf("extend offsets (-want +got):\n%s", diff)
			}
			l.Close()
		})
	})

	t.Run("transient_error_then_recovery", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			boom := driver.NewError(driver.NetworkTimeout, "slow")
			f := newFakeDriver().onExtend(
				fakeStep[driver.ExtendResult]{err: boom},
				fakeStep[driver.ExtendResult]{err: boom},
				fakeStep[driver.ExtendResult]{res: driver.ExtendResult{OK: true, ExpiresAtMs: 77}},
				fakeStep[driver.ExtendResult]{err: boom},
			)
			g := newFakeGuard(f)
			start := time.Now()
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			time.Sleep(4 * sec)
			synctest.Wait()
			if isClosed(l.Lost()) {
				t.Fatal("lease lost although an extend succeeded in time")
			}
			if l.ExpiresAtMs() != 77 {
				t.Errorf("ExpiresAtMs = %d", l.ExpiresAtMs())
			}
			// Success at 1.5s moved the deadline to 4.5s.
			<-l.Lost()
			if d := time.Since(start); d != 4500*time.Millisecond {
				t.Errorf("lost at %v, want 4.5s", d)
			}
			l.Close()
		})
	})

	t.Run("hanging_extend_cut_at_deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{delay: time.Hour})
			g := newFakeGuard(f)
			start := time.Now()
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			<-l.Lost()
			if d := time.Since(start); d != ttl {
				t.Errorf("lost at %v, want %v", d, ttl)
			}
			if c := f.extends()[0]; !c.hasDeadline || c.deadline.Sub(start) != ttl {
				t.Errorf("extend ctx deadline %v, want the lease's local expiry", c.deadline.Sub(start))
			}
			l.Close()
		})
	})

	t.Run("stops_with_acquire_ctx", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver()
			g := newFakeGuard(f)
			ctx, cancel := context.WithCancel(context.Background())
			l, err := g.Acquire(ctx, "k", TTL(ttl), AutoExtend(true))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)
			cancel()
			synctest.Wait()
			if !isClosed(l.hbDone) {
				t.Error("heartbeat still running after the Acquire ctx ended")
			}
			time.Sleep(10 * sec)
			if n := len(f.extends()); n != 1 {
				t.Errorf("Extend calls = %d, want 1", n)
			}
			if isClosed(l.Lost()) {
				t.Error("cancelled lease reported lost")
			}
			l.Close()
		})
	})

	t.Run("release_during_extend_stops_quietly", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailNotFound}, delay: 500 * time.Millisecond})
			g := newFakeGuard(f)
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			time.Sleep(1200 * time.Millisecond) // extend in flight
			if ok, err := l.Release(context.Background()); !ok || err != nil {
				t.Fatalf("Release = %v, %v", ok, err)
			}
			if isClosed(l.Lost()) {
				t.Error("lease lost by an extend cancelled by Release")
			}
		})
	})

	t.Run("observer_panic_on_lost_is_recovered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{res: driver.ExtendResult{}})
			g := newFakeGuard(f, WithObserver(ObserverFunc(func(Event) { panic("observer") })))
			l := acquireLease(t, g, "k", TTL(ttl), AutoExtend(true))
			<-l.Lost()
			l.Close()
		})
	})
}

// ---------------------------------------------------------------------------
// Section K, case 151: observed leases
// ---------------------------------------------------------------------------

func TestLeaseTelemetry(t *testing.T) {
	keyHash, lockIDHash := driver.HashKey("k"), driver.HashKey(fakeLockID(1))
	tests := []struct {
		name string
		use  func(t *testing.T, l *Lease[fakeCaps])
		want []Event
	}{
		{
			name: "case151_release_emits_event",
			use: func(t *testing.T, l *Lease[fakeCaps]) {
				if _, err := l.Release(context.Background()); err != nil {
					t.Fatal(err)
				}
			},
			want: []Event{{Type: EventRelease, Result: ResultOK, KeyHash: keyHash, LockIDHash: lockIDHash}},
		},
		{
			name: "case151_close_emits_event",
			use:  func(t *testing.T, l *Lease[fakeCaps]) { l.Close(); l.Close() },
			want: []Event{{Type: EventRelease, Result: ResultOK, KeyHash: keyHash, LockIDHash: lockIDHash}},
		},
		{
			name: "case151_extend_then_close",
			use: func(t *testing.T, l *Lease[fakeCaps]) {
				if _, err := l.Extend(context.Background(), time.Second); err != nil {
					t.Fatal(err)
				}
				l.Close()
			},
			want: []Event{
				{Type: EventExtend, Result: ResultOK, KeyHash: keyHash, LockIDHash: lockIDHash},
				{Type: EventRelease, Result: ResultOK, KeyHash: keyHash, LockIDHash: lockIDHash},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &eventRecorder{}
			f := newFakeDriver()
			g := newFakeGuard(f, WithObserver(obs))
			l := acquireLease(t, g, "k")
			tc.use(t, l)
			want := append([]Event{{Type: EventAcquire, Result: ResultOK, KeyHash: keyHash}}, tc.want...)
			if diff := cmp.Diff(want, obs.snapshot(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			// The lease gives the driver its key with the lock ID.
			for _, c := range append(f.releases(), f.extends()...) {
				if c.key != "k" || c.arg != fakeLockID(1) {
					t.Errorf("driver got key %q, lock ID %q; want %q, %q", c.key, c.arg, "k", fakeLockID(1))
				}
			}
		})
	}

	t.Run("case151_do_emits_acquire_and_release", func(t *testing.T) {
		obs := &eventRecorder{}
		g := newFakeGuard(newFakeDriver().onAcquire(contendedStep(), acquiredStep(1)), WithObserver(obs))
		if err := g.Do(context.Background(), "k", func(context.Context, *Lease[fakeCaps]) error { return nil }, RetryDelay(0)); err != nil {
			t.Fatal(err)
		}
		var types []EventType
		for _, e := range obs.snapshot() {
			types = append(types, e.Type)
		}
		if diff := cmp.Diff([]EventType{EventAcquire, EventAcquire, EventRelease}, types); diff != "" {
			t.Errorf("event types (-want +got):\n%s", diff)
		}
	})
}

// TestLeaseLazyContext: a lease makes its context and Lost channel on first
// use; made before or after a release or a loss, they are in the same state.
func TestLeaseLazyContext(t *testing.T) {
	type ctxKey struct{}
	type state struct {
		Lost, Done, CauseLost, CauseCanceled, Value bool
	}
	tests := []struct {
		name   string
		early  bool // call Context and Lost before the event
		lose   bool // Extend finds the lock gone, then Release
		cancel bool // Acquire's context is cancelled instead of any event
		want   state
	}{
		{name: "released_made_before", early: true, want: state{Done: true, CauseCanceled: true, Value: true}},
		{name: "released_made_after", want: state{Done: true, CauseCanceled: true, Value: true}},
		{name: "lost_made_before", early: true, lose: true, want: state{Lost: true, Done: true, CauseLost: true, Value: true}},
		{name: "lost_made_after", lose: true, want: state{Lost: true, Done: true, CauseLost: true, Value: true}},
		{name: "parent_cancelled_made_before", early: true, cancel: true, want: state{Done: true, CauseCanceled: true, Value: true}},
		{name: "parent_cancelled_made_after", cancel: true, want: state{Done: true, CauseCanceled: true, Value: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDriver().onExtend(fakeStep[driver.ExtendResult]{res: driver.ExtendResult{Detail: driver.DetailNotFound}})
			g := newFakeGuard(f)
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
			defer cancel()
			l, err := g.TryAcquire(ctx, "lazy", AutoExtend(false))
			if err != nil {
				t.Fatalf("TryAcquire: %v", err)
			}
			defer l.Close()
			if tc.early {
				if l.Context().Err() != nil || isClosed(l.Lost()) {
					t.Fatal("fresh lease is cancelled or lost")
				}
			}
			switch {
			case tc.cancel:
				cancel()
			case tc.lose:
				if ok, err := l.Extend(context.Background(), time.Second); ok || err != nil {
					t.Fatalf("Extend = %v, %v", ok, err)
				}
				l.Close()
			default:
				if _, err := l.Release(context.Background()); err != nil {
					t.Fatalf("Release: %v", err)
				}
			}
			lctx := l.Context()
			cause := context.Cause(lctx)
			got := state{
				Lost:          isClosed(l.Lost()),
				Done:          lctx.Err() != nil,
				CauseLost:     errors.Is(cause, ErrLockLost),
				CauseCanceled: errors.Is(cause, context.Canceled),
				Value:         lctx.Value(ctxKey{}) == "v",
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lease state (-want +got):\n%s", diff)
			}
			if lost1, lost2 := l.Lost(), l.Lost(); l.Context() != lctx || lost1 != lost2 {
				t.Error("Context or Lost differ between calls")
			}
		})
	}
}
