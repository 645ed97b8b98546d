package redis

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard/driver"
)

// abandonGrace is how long a request whose caller's context ended may
// still run before its own context is cancelled (see exec).
const abandonGrace = 5 * time.Second

// call is one script run: its keys and arguments, kept in buf so that the
// hot paths build them without allocating, and the channel of its result.
// A call is also the request's context: the caller's values without its
// cancellation or deadline (as context.WithoutCancel), so that one
// caller's context cannot fail other callers' requests (see exec). Calls
// that completed are pooled; an abandoned one is left to its worker.
type call struct {
	buf        [16]string
	keys, args []string
	s          *rueidis.Lua      // the script, or nil for cmd
	cmd        rueidis.Completed // a command that rueidis does not retry
	parent     context.Context
	ch         chan rueidis.RedisResult // capacity 1
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan rueidis.RedisResult, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

// set makes keys and args views of buf (copies if they do not fit).
func (c *call) set(keys []string, args ...string) {
	if len(keys)+len(args) > len(c.buf) {
		c.keys, c.args = slices.Clone(keys), slices.Clone(args)
		return
	}
	n := copy(c.buf[:], keys)
	c.keys = c.buf[:n:n]
	m := copy(c.buf[n:], args)
	c.args = c.buf[n : n+m : n+m]
}

// set2 is set for two keys and four arguments (a plain acquisition),
// without the variadic slices.
func (c *call) set2(k1, k2, a1, a2, a3, a4 string) {
	c.buf[0], c.buf[1], c.buf[2], c.buf[3], c.buf[4], c.buf[5] = k1, k2, a1, a2, a3, a4
	c.keys = c.buf[0:2:2]
	c.args = c.buf[2:6:6]
}

// put returns a completed call to the pool.
func (c *call) put() {
	clear(c.buf[:])
	c.keys, c.args, c.s, c.parent, c.cmd = nil, nil, nil, nil, rueidis.Completed{}
	callPool.Put(c)
}

func (c *call) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *call) Done() <-chan struct{}       { return nil }
func (c *call) Err() error                  { return nil }
func (c *call) Value(key any) any           { return c.parent.Value(key) }

// runOn runs the call's script or command with ctx.
func (c *call) runOn(ctx context.Context, client rueidis.Client) rueidis.RedisResult {
	if c.s != nil {
		return c.s.Exec(ctx, client, c.keys, c.args)
	}
	return client.Do(ctx, c.cmd)
}

// exec runs script s and returns as soon as ctx ends, even while the
// request is in flight, and at the latest after the driver's call timeout
// (WithCallTimeout), whatever ctx.
//
// rueidis alone does not guarantee that: it honours a cancellation in
// flight only in its pipelined mode, and a connection it dials inside the
// call (lazily, on first use, or after a break) does its handshake bounded
// by the deadline or its dial timeout only (conformance case 094 caught
// this). With its default options it also retries a read-only command
// (GetRecord's GET) for as long as the server is unreachable, so a call
// whose context has no deadline never returned while Redis was down
// (issue 16). So every call runs on a goroutine of its own, which finishes
// when the client returns, and the call returns ctx's error when ctx ends,
// or a NetworkTimeout when the call timeout passes first. Running calls
// inline (as calls with context.Background once did) was measured 22%
// faster on a serial pair, but broke both guarantees; see issues 7 and 16.
//
// The goroutine hands rueidis ctx without its cancellation and deadline
// (context.WithoutCancel). Passing ctx on let one caller's context fail the
// calls of others: a request whose deadline ends while it is the only one
// in flight closes the connection (rueidis's synchronous mode), and the
// redial runs with the context of whichever call needs the connection
// first, handing its error ("context canceled") to every call waiting for
// the same dial.
//
// An abandoned request still ends: abandonGrace after its caller gave up
// (ctx ended or the call timeout passed), or when the driver is closed if
// that is sooner, its own context is cancelled too.
// Without that, rueidis would keep retrying a read-only command for as long
// as the server is unreachable, one goroutine per abandoned call.
func (d *Driver) exec(ctx context.Context, s *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	c := getCall()
	c.keys, c.args = keys, args
	return d.scriptCall(ctx, s, c)
}

// run is exec for a pooled call whose keys and args are set.
func (d *Driver) run(ctx context.Context, s *rueidis.Lua, c *call) rueidis.RedisResult {
	return d.scriptCall(ctx, s, c)
}

// do is exec for a single command.
func (d *Driver) do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return d.call(ctx, op{cmd: cmd})
}

// op is a single command.
type op struct {
	cmd rueidis.Completed
}

func (o op) run(ctx context.Context, client rueidis.Client) rueidis.RedisResult {
	return client.Do(ctx, o.cmd)
}

// flight is one request on its goroutine (see call).
type flight struct {
	ch     chan rueidis.RedisResult
	ctx    context.Context // the request's: the caller's without its cancellation
	cancel context.CancelFunc
	// stop unregisters the cancellation at Close of an abandoned request.
	stop atomic.Pointer[func() bool]
}

// fly runs o for f and hands the result over.
func (d *Driver) fly(f *flight, o op) {
	f.ch <- o.run(f.ctx, d.client)
	f.cancel()
	if stop := f.stop.Load(); stop != nil {
		(*stop)()
	}
}

// abandon leaves f to its goroutine: the request is cancelled abandonGrace
// later, or when the driver is closed if that is sooner.
func (d *Driver) abandon(f *flight) {
	time.AfterFunc(d.abandonGrace, f.cancel)
	stop := context.AfterFunc(d.closed, f.cancel)
	f.stop.Store(&stop)
	if f.ctx.Err() != nil { // the request finished before the Store
		stop()
	}
}

// call runs the single command o as exec describes, with a cancellable
// context of its own: rueidis retries a read-only command while the
// server is away, and an abandoned one must stop doing so.
func (d *Driver) call(ctx context.Context, o op) rueidis.RedisResult {
	f := &flight{ch: make(chan rueidis.RedisResult, 1)}
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go d.fly(f, o)
	var bound <-chan time.Time
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d.callTimeout {
		t := time.NewTimer(d.callTimeout)
		defer t.Stop()
		bound = t.C
	}
	select {
	case r := <-f.ch:
		return r
	case <-ctx.Done():
		d.abandon(f)
		return rueidis.NewErrorResult(ctx.Err()) // o is left to its goroutine
	case <-bound:
		d.abandon(f)
		return rueidis.NewErrorResult(d.callTimeoutError())
	}
}

// scriptCall is exec for a script: the request runs on a worker
// goroutine while the caller waits for the first of its reply, ctx's end
// and the call bound, as exec explains, but without allocating or
// starting anything per call: the call is pooled and is the request's
// context, workers are reused (see dispatch), and the call bound is a
// channel shared by every call that started in the same few milliseconds
// (see boundClock).
//
// rueidis does not retry scripts (EVALSHA is not read-only), so an
// abandoned script request needs no cancellation of its own: it ends with
// its reply, or when rueidis gives up on the connection (its dial timeout,
// or the pipe's write timeout and keep-alive for a connection that stopped
// answering).
//
// A request whose context can never end (ctx.Done() is nil, as for
// context.Background) runs inline, on the caller's goroutine: its only
// bound is the call bound, which it hands rueidis as the request's
// deadline (and Done). rueidis honours a deadline in each of its modes,
// while dialling and in the handshake of a connection it dials too, and
// retries a command only within it; an expiring deadline may close the
// connection (rueidis's synchronous mode), but only after the server kept
// a request unanswered for the whole bound. A context that can end keeps
// the worker: rueidis honours a cancellation in flight only in its
// pipelined mode, and not while dialling inside the call.
func (d *Driver) scriptCall(ctx context.Context, s *rueidis.Lua, c *call) rueidis.RedisResult {
	c.s, c.parent = s, ctx
	if ctx.Done() == nil {
		// The request's context is the bound's window (immutable and
		// shared: what rueidis or the dialer keep of it after the call,
		// such as a context.AfterFunc goroutine, never sees a reused
		// call), with the caller's values when it has any.
		w := d.bounds.window(d.callTimeout)
		var rctx context.Context = w
		if ctx != context.Background() {
			rctx = &boundCtx{w, ctx}
		}
		r := c.runOn(rctx, d.client)
		c.put()
		if r.Error() != nil && time.Now().UnixNano() >= w.at {
			return rueidis.NewErrorResult(d.callTimeoutError())
		}
		return r
	}
	d.dispatch(c)
	var bound <-chan struct{}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d.callTimeout {
		bound = d.bounds.window(d.callTimeout).ch
	}
	select {
	case r := <-c.ch:
		c.put()
		return r
	case <-ctx.Done():
		return rueidis.NewErrorResult(ctx.Err()) // c is left to its worker
	case <-bound:
		return rueidis.NewErrorResult(d.callTimeoutError())
	}
}

// writeCall is scriptCall for a single command that rueidis does not
// retry (a write, such as SET NX).
func (d *Driver) writeCall(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c := getCall()
	c.cmd = cmd
	return d.scriptCall(ctx, nil, c)
}

// workerIdle is how long an idle worker waits for the next call before it
// exits.
const workerIdle = 200 * time.Millisecond

// dispatch hands c to an idle worker, or starts one.
func (d *Driver) dispatch(c *call) {
	select {
	case d.work <- c:
	default:
		go d.worker(c)
	}
}

// worker runs calls until it has been idle for workerIdle or the driver is
// closed. It sends each result on the call's channel and does not touch
// the call afterwards.
func (d *Driver) worker(c *call) {
	var t *time.Timer
	for {
		c.ch <- c.runOn(c, d.client)
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case c = <-d.work:
		case <-t.C:
			return
		case <-d.closed.Done():
			t.Stop()
			return
		}
	}
}

// boundGranularity is the resolution of the call bound: a call's bound
// ends between callTimeout and callTimeout + boundGranularity after it
// started.
const boundGranularity = 5 * time.Millisecond

// boundClock hands out channels that are closed at a given time, one per
// boundGranularity window, each with one timer: the calls of a busy
// driver share them instead of starting a timer each.
type boundClock struct {
	cur atomic.Pointer[boundWindow]
	mu  sync.Mutex
}

type boundWindow struct {
	at int64 // Unix ns, a multiple of boundGranularity
	ch chan struct{}
}

// A boundWindow is a context: no values, its time as the deadline, its
// channel as Done.
func (w *boundWindow) Deadline() (time.Time, bool) { return time.Unix(0, w.at), true }
func (w *boundWindow) Done() <-chan struct{}       { return w.ch }
func (w *boundWindow) Value(any) any               { return nil }
func (w *boundWindow) Err() error {
	select {
	case <-w.ch:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// boundCtx is a window with the values of a context that cannot end.
type boundCtx struct {
	*boundWindow
	values context.Context
}

func (b *boundCtx) Value(key any) any { return b.values.Value(key) }

// window returns the window whose channel is closed d (rounded up to the
// granularity) from now.
func (b *boundClock) window(d time.Duration) *boundWindow {
	const g = int64(boundGranularity)
	at := (time.Now().Add(d).UnixNano() + g - 1) / g * g
	if w := b.cur.Load(); w != nil && w.at == at {
		return w
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.cur.Load()
	if w != nil && w.at == at {
		return w
	}
	nw := &boundWindow{at: at, ch: make(chan struct{})}
	time.AfterFunc(time.Until(time.Unix(0, at)), func() { close(nw.ch) })
	if w == nil || at > w.at {
		b.cur.Store(nw)
	}
	return nw
}

// callTimeoutError is the error of a call that the call timeout ended.
func (d *Driver) callTimeoutError() error {
	return &driver.LockError{
		Code:    driver.NetworkTimeout,
		Message: "redis: no reply within the call timeout (" + d.callTimeout.String() + ")",
		Cause:   context.DeadlineExceeded,
	}
}
