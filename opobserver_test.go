package syncguard_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
)

// opMark is the context value the recorder's StartOperation adds.
type opMark struct{}

// opEvent is an event as an OperationObserver received it, with the
// operation its context belonged to ("" outside one).
type opEvent struct {
	Op     syncguard.EventType
	Type   syncguard.EventType
	Result string
	Reason string
	Code   driver.Code
	// Flags: Handoff, AutoExtend, Held > 0, a raw key or lock ID.
	Handoff, AutoExtend, Held, Raw bool
}

// opRecorder is an OperationObserver recording what it receives.
type opRecorder struct {
	mu      sync.Mutex
	started []syncguard.EventType
	events  []opEvent
	plain   int // OnEvent calls: must stay 0
}

func (r *opRecorder) OnEvent(syncguard.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plain++
}

func (r *opRecorder) StartOperation(ctx context.Context, op syncguard.EventType) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, op)
	return context.WithValue(ctx, opMark{}, op)
}

func (r *opRecorder) OnEventContext(ctx context.Context, e syncguard.Event) {
	op, _ := ctx.Value(opMark{}).(syncguard.EventType)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, opEvent{Op: op, Type: e.Type, Result: e.Result, Reason: e.Reason, Code: e.Code,
		Handoff: e.Handoff, AutoExtend: e.AutoExtend, Held: e.Held > 0, Raw: e.Key != "" || e.LockID != ""})
}

func (r *opRecorder) take() ([]syncguard.EventType, []opEvent, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, e, p := r.started, r.events, r.plain
	r.started, r.events = nil, nil
	return s, e, p
}

// plainRecorder is an Observer without operation support.
type plainRecorder struct {
	mu     sync.Mutex
	events []syncguard.Event
}

func (r *plainRecorder) OnEvent(e syncguard.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// TestOperationObserverGuard: an OperationObserver sees each acquisition
// and release as an operation whose context its driver calls and final
// event carry; contention, TryAcquire, timeouts, lost leases and the
// heartbeat are reported; a plain observer beside it in a MultiObserver
// sees the driver events only, without the new fields.
func TestOperationObserverGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec, plain := &opRecorder{}, &plainRecorder{}
	d := memory.New()
	g := syncguard.New(d, syncguard.WithObserver(syncguard.MultiObserver(rec, plain)))
	other := syncguard.New(d)

	// Contention, then acquired after the holder released.
	held, err := other.Acquire(ctx, "op:k")
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(20*time.Millisecond, held.Close)
	l, err := g.Acquire(ctx, "op:k", syncguard.RetryDelay(5*time.Millisecond), syncguard.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	l.Close()
	started, events, nplain := rec.take()
	if diff := cmp.Diff([]syncguard.EventType{syncguard.EventAcquisition, syncguard.EventLeaseRelease}, started); diff != "" {
		t.Errorf("started operations (-want +got):\n%s", diff)
	}
	if nplain != 0 {
		t.Errorf("OnEvent called %d times on an OperationObserver", nplain)
	}
	if len(events) < 5 {
		t.Fatalf("events %+v; want contended attempts, an acquisition, a release", events)
	}
	first, last := events[0], events[len(events)-1]
	if first.Op != syncguard.EventAcquisition || first.Type != syncguard.EventAcquire || first.Result != syncguard.ResultFail {
		t.Errorf("first event %+v; want a contended attempt inside the acquisition", first)
	}
	wantTail := []opEvent{
		{Op: syncguard.EventAcquisition, Type: syncguard.EventAcquisition, Result: syncguard.ResultOK},
		{Op: syncguard.EventLeaseRelease, Type: syncguard.EventRelease, Result: syncguard.ResultOK},
		{Op: syncguard.EventLeaseRelease, Type: syncguard.EventLeaseRelease, Result: syncguard.ResultOK, Held: true},
	}
	gotTail := events[len(events)-3:]
	// The successful attempt comes right before the acquisition event;
	// the waiter's attempts are hand-off attempts on the memory driver.
	if a := events[len(events)-4]; a.Type != syncguard.EventAcquire || a.Result != syncguard.ResultOK || !a.Handoff {
		t.Errorf("successful attempt %+v; want ok through the hand-off waiter", a)
	}
	if diff := cmp.Diff(wantTail, gotTail); diff != "" || last.Type != syncguard.EventLeaseRelease {
		t.Errorf("final events (-want +got):\n%s", diff)
	}
	plain.mu.Lock()
	for _, e := range plain.events {
		if e.Type != syncguard.EventAcquire && e.Type != syncguard.EventRelease {
			t.Errorf("plain observer got %v", e.Type)
		}
		if e.Handoff || e.AutoExtend || e.Held != 0 {
			t.Errorf("plain observer got operation fields: %+v", e)
		}
	}
	plain.events = nil
	plain.mu.Unlock()

	// TryAcquire on a held key; Acquire that times out.
	held, err = other.Acquire(ctx, "op:k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.TryAcquire(ctx, "op:k"); !errors.Is(err, syncguard.ErrLocked) {
		t.Fatalf("TryAcquire: %v", err)
	}
	_, err = g.Acquire(ctx, "op:k", syncguard.MaxRetries(1), syncguard.RetryDelay(time.Millisecond))
	if driver.CodeOf(err) != driver.AcquisitionTimeout {
		t.Fatalf("Acquire: %v", err)
	}
	held.Close()
	_, events, _ = rec.take()
	var outcomes []opEvent
	for _, e := range events {
		if e.Type == syncguard.EventAcquisition {
			outcomes = append(outcomes, e)
		}
	}
	wantOutcomes := []opEvent{
		{Op: syncguard.EventAcquisition, Type: syncguard.EventAcquisition, Result: syncguard.ResultFail, Reason: driver.ReasonLocked},
		{Op: syncguard.EventAcquisition, Type: syncguard.EventAcquisition, Result: syncguard.ResultError, Code: driver.AcquisitionTimeout},
	}
	if diff := cmp.Diff(wantOutcomes, outcomes); diff != "" {
		t.Errorf("acquisition outcomes (-want +got):\n%s", diff)
	}

	// The heartbeat's extends are marked; a lease found gone is lost.
	l, err = g.Acquire(ctx, "op:hb", syncguard.TTL(60*time.Millisecond), syncguard.AutoExtend(true))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var auto bool
	for !auto && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		rec.mu.Lock()
		for _, e := range rec.events {
			auto = auto || (e.Type == syncguard.EventExtend && e.AutoExtend && e.Result == syncguard.ResultOK)
		}
		rec.mu.Unlock()
	}
	if !auto {
		t.Error("no extend event marked AutoExtend from the heartbeat")
	}
	l.Close()
	l, err = g.Acquire(ctx, "op:lost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Release(ctx, l.Key(), l.LockID()); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Extend(ctx, time.Second); ok || err != nil {
		t.Fatalf("Extend = %v, %v", ok, err)
	}
	<-l.Lost()
	l.Close()
	_, events, _ = rec.take()
	var lost, manual int
	for _, e := range events {
		if e.Type == syncguard.EventLost {
			lost++
		}
		if e.Type == syncguard.EventExtend && e.Result == syncguard.ResultFail && !e.AutoExtend {
			manual++
		}
	}
	if lost != 1 || manual != 1 {
		t.Errorf("%d lost events, %d failed manual extends; want 1, 1 (%+v)", lost, manual, events)
	}
}

// TestOperationObserverRateAndOnce: a RateLimiter with WithObserver and
// OncePerKey.Do report rate and once events to an OperationObserver only.
func TestOperationObserverRateAndOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec, plain := &opRecorder{}, &plainRecorder{}
	d := memory.New()
	g := syncguard.New(d, syncguard.WithObserver(syncguard.MultiObserver(rec, plain)))
	lim, err := syncguard.NewRateLimiter(d, syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1},
		syncguard.WithObserver(syncguard.MultiObserver(rec, plain)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := lim.Allow(ctx, "client"); err != nil {
			t.Fatal(err)
		}
	}
	once, err := syncguard.NewOncePerKey[int](g, syncguard.WithNonBlocking())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, err := once.Do(ctx, "job", func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
			t.Fatalf("Do = %v, %v", v, err)
		}
	}
	// A running function makes a concurrent non-blocking Do fail.
	inFn := make(chan struct{})
	doneFn := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, _ = once.Do(ctx, "slow", func(context.Context) (int, error) {
			close(inFn)
			<-doneFn
			return 1, nil
		})
	}()
	<-inFn
	if _, err := once.Do(ctx, "slow", func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, syncguard.ErrInProgress) {
		t.Fatalf("concurrent Do: %v", err)
	}
	close(doneFn)
	<-finished // its once event comes last
	_, events, _ := rec.take()
	var got []opEvent
	for _, e := range events {
		if e.Type == syncguard.EventRate || e.Type == syncguard.EventOnce {
			got = append(got, e)
		}
	}
	want := []opEvent{
		{Type: syncguard.EventRate, Result: syncguard.ResultOK},
		{Type: syncguard.EventRate, Result: syncguard.ResultFail, Reason: "limited"},
		{Type: syncguard.EventOnce, Result: syncguard.ResultOK},
		{Type: syncguard.EventOnce, Result: syncguard.ResultOK, Reason: "replayed"},
		{Type: syncguard.EventOnce, Result: syncguard.ResultFail, Reason: "in-progress"},
		{Type: syncguard.EventOnce, Result: syncguard.ResultOK},
	}
	for i := range got {
		if got[i].Type == syncguard.EventOnce {
			if got[i].Op != syncguard.EventOnce {
				t.Errorf("once event %d outside its operation's context", i)
			}
			got[i].Op = ""
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rate and once events (-want +got):\n%s", diff)
	}
	plain.mu.Lock()
	defer plain.mu.Unlock()
	for _, e := range plain.events {
		if e.Type == syncguard.EventOnce {
			t.Errorf("plain observer got %v", e.Type)
		}
	}
}

// panicOpObserver panics in every method.
type panicOpObserver struct{}

func (panicOpObserver) OnEvent(syncguard.Event) { panic("OnEvent") }
func (panicOpObserver) StartOperation(context.Context, syncguard.EventType) context.Context {
	panic("StartOperation")
}
func (panicOpObserver) OnEventContext(context.Context, syncguard.Event) { panic("OnEventContext") }

// TestOperationObserverPanics: panics of an OperationObserver change no
// result.
func TestOperationObserverPanics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := syncguard.New(memory.New(), syncguard.WithObserver(panicOpObserver{}))
	l, err := g.Acquire(ctx, "panic:k")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Release(ctx); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	once, err := syncguard.NewOncePerKey[int](g)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := once.Do(ctx, "panic:job", func(context.Context) (int, error) { return 3, nil }); v != 3 || err != nil {
		t.Fatalf("Do = %v, %v", v, err)
	}
}

// TestOperationObserverRawOptIn: raw keys reach operation events only
// with WithRawEvents.
func TestOperationObserverRawOptIn(t *testing.T) {
	t.Parallel()
	for _, raw := range []bool{false, true} {
		rec := &opRecorder{}
		g := syncguard.New(memory.New(), syncguard.WithObserver(rec), syncguard.WithRawEvents(func(syncguard.Event) bool { return raw }))
		l, err := g.Acquire(context.Background(), "raw:k")
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		_, events, _ := rec.take()
		for _, e := range events {
			if e.Raw != raw {
				t.Errorf("raw %v: %v event with raw key %v", raw, e.Type, e.Raw)
			}
		}
	}
}

// digestRecorder is an OperationObserver that needs digests only when
// want says so, recording the digests of the events it receives.
type digestRecorder struct {
	want func(ctx context.Context) bool

	mu     sync.Mutex
	hashes []string // KeyHash + "/" + LockIDHash per event, by type
}

func (r *digestRecorder) OnEvent(syncguard.Event) {}
func (r *digestRecorder) StartOperation(ctx context.Context, _ syncguard.EventType) context.Context {
	return ctx
}
func (r *digestRecorder) NeedsDigests(ctx context.Context) bool { return r.want(ctx) }
func (r *digestRecorder) OnEventContext(_ context.Context, e syncguard.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hashes = append(r.hashes, string(e.Type)+" "+e.KeyHash+"/"+e.LockIDHash)
}

// withoutChooser is an OperationObserver without NeedsDigests, recording
// through r.
type withoutChooser struct{ r *digestRecorder }

func (w withoutChooser) OnEvent(e syncguard.Event) { w.r.OnEvent(e) }
func (w withoutChooser) StartOperation(ctx context.Context, op syncguard.EventType) context.Context {
	return w.r.StartOperation(ctx, op)
}
func (w withoutChooser) OnEventContext(ctx context.Context, e syncguard.Event) {
	w.r.OnEventContext(ctx, e)
}

// TestOperationObserverDigests: events carry KeyHash and LockIDHash
// exactly when the observer's NeedsDigests says so for the call's context,
// the same digests as driver.HashKey; a MultiObserver gets them when any
// of its observers needs them (a plain Observer always does).
func TestOperationObserverDigests(t *testing.T) {
	type mark struct{}
	const key = "digests:key"
	ctx := context.Background()
	run := func(t *testing.T, obs syncguard.Observer, ctx context.Context) string {
		t.Helper()
		g := syncguard.New(memory.New(), syncguard.WithObserver(obs))
		l, err := g.Acquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := l.Release(ctx); !ok || err != nil {
			t.Fatalf("Release = %v, %v", ok, err)
		}
		return l.LockID()
	}
	kh := driver.HashKey(key)
	for _, tc := range []struct {
		name   string
		want   func(context.Context) bool
		ctx    context.Context
		plain  bool                       // add a plain Observer through MultiObserver
		peer   func(context.Context) bool // add an OperationObserver with this NeedsDigests through MultiObserver
		hashed bool
	}{
		{name: "needed", want: func(context.Context) bool { return true }, ctx: ctx, hashed: true},
		{name: "no NeedsDigests method", ctx: ctx, hashed: true}, // want nil: an observer without the method
		{name: "not needed", want: func(context.Context) bool { return false }, ctx: ctx},
		{name: "by context, marked", want: func(c context.Context) bool { return c.Value(mark{}) != nil },
			ctx: context.WithValue(ctx, mark{}, 1), hashed: true},
		{name: "by context, unmarked", want: func(c context.Context) bool { return c.Value(mark{}) != nil }, ctx: ctx},
		{name: "panicking means needed", want: func(context.Context) bool { panic("boom") }, ctx: ctx, hashed: true},
		{name: "with a plain observer", want: func(context.Context) bool { return false }, ctx: ctx, plain: true, hashed: true},
		{name: "with a peer not needing them", want: func(context.Context) bool { return false }, ctx: ctx,
			peer: func(context.Context) bool { return false }},
		{name: "with a peer needing them", want: func(context.Context) bool { return false }, ctx: ctx,
			peer: func(context.Context) bool { return true }, hashed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &digestRecorder{want: tc.want}
			var obs syncguard.Observer = r
			if tc.want == nil {
				obs = withoutChooser{r}
			}
			if tc.plain {
				obs = syncguard.MultiObserver(syncguard.ObserverFunc(func(syncguard.Event) {}), r)
			}
			if tc.peer != nil {
				obs = syncguard.MultiObserver(r, &digestRecorder{want: tc.peer})
			}
			id := run(t, obs, tc.ctx)
			ih := driver.HashKey(id)
			want := []string{"acquire " + kh + "/", "acquisition " + kh + "/", "release " + kh + "/" + ih, "leaseRelease " + kh + "/" + ih}
			if !tc.hashed {
				want = []string{"acquire /", "acquisition /", "release /", "leaseRelease /"}
			}
			if diff := cmp.Diff(want, r.hashes); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecordEvents: OncePerKey's record reads and writes are events of
// their own (EventRecord), through a plain Observer too.
func TestRecordEvents(t *testing.T) {
	var (
		mu     sync.Mutex
		events []string
	)
	obs := syncguard.ObserverFunc(func(e syncguard.Event) {
		if e.Type != syncguard.EventRecord {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e.Result+"/"+e.Reason)
	})
	g := syncguard.New(memory.New(), syncguard.WithObserver(obs))
	once, err := syncguard.NewOncePerKey[int](g)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if v, err := once.Do(ctx, "job", func(context.Context) (int, error) { return 7, nil }); v != 7 || err != nil {
			t.Fatalf("Do = %v, %v", v, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("record events: %v", events)
	// The first call reads (no record) before and after taking the lock,
	// claims the record and completes it; the replay reads it.
	want := []string{"fail/", "fail/", "ok/", "ok/", "ok/"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("record events (-want +got):\n%s", diff)
	}
}
