package redis

import (
	"context"
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
// hot paths build them without allocating. Calls are pooled.
type call struct {
	buf        [16]string
	keys, args []string
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func getCall() *call { return callPool.Get().(*call) }

// set makes keys and args views of buf (fresh slices if they do not fit).
func (c *call) set(keys []string, args ...string) {
	if len(keys)+len(args) > len(c.buf) {
		c.keys, c.args = keys, args
		return
	}
	n := copy(c.buf[:], keys)
	c.keys = c.buf[:n:n]
	m := copy(c.buf[n:], args)
	c.args = c.buf[n : n+m : n+m]
}

func (c *call) put() {
	clear(c.buf[:])
	c.keys, c.args = nil, nil
	callPool.Put(c)
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
	return d.call(ctx, op{s: s, keys: keys, args: args})
}

// run is exec for a pooled call whose keys and args are set; it returns c
// to the pool.
func (d *Driver) run(ctx context.Context, s *rueidis.Lua, c *call) rueidis.RedisResult {
	return d.call(ctx, op{s: s, keys: c.keys, args: c.args, c: c})
}

// do is exec for a single command.
func (d *Driver) do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return d.call(ctx, op{cmd: cmd})
}

// op is a script with its keys and arguments (and the pooled call that
// holds them, if any, returned to the pool once the script ran), or a
// single command.
type op struct {
	s          *rueidis.Lua
	keys, args []string
	c          *call
	cmd        rueidis.Completed
}

func (o op) run(ctx context.Context, client rueidis.Client) rueidis.RedisResult {
	if o.s == nil {
		return client.Do(ctx, o.cmd)
	}
	r := o.s.Exec(ctx, client, o.keys, o.args)
	if o.c != nil {
		o.c.put()
	}
	return r
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

// call runs o as exec describes.
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

// callTimeoutError is the error of a call that the call timeout ended.
func (d *Driver) callTimeoutError() error {
	return &driver.LockError{
		Code:    driver.NetworkTimeout,
		Message: "redis: no reply within the call timeout (" + d.callTimeout.String() + ")",
		Cause:   context.DeadlineExceeded,
	}
}
