package redis

import (
	"context"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

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

// exec runs script s, bounded by ctx.
//
// A healthy connection runs the call on the caller's goroutine, where
// rueidis bounds it by ctx: in its pipelined mode (the default) the call
// returns as soon as ctx ends, even with the request in flight, and
// otherwise (a connection not yet pipelining, or DisableAutoPipelining) it
// sets ctx's deadline on the connection. A connection that rueidis dials
// inside the call (lazily, on first use) has its handshake bounded by
// ctx's deadline or rueidis's dial timeout (default 5 s), whichever is
// first; a cancellation without a deadline is noticed after it.
//
// After a call fails with a network error or ends with its context, the
// driver runs the calls of the next isolateFor on goroutines of their own
// and returns when ctx ends, whatever the client is doing: a connection
// with abandoned requests, or being redialled (rueidis's handshake is not
// bounded by the caller's context), would otherwise hold new calls past
// their deadlines. That isolation costs a goroutine hand-off per call,
// which is why healthy calls run inline (issue 7: it was a visible share
// of a serial pair).
func (d *Driver) exec(ctx context.Context, s *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	c := getCall()
	c.keys, c.args = keys, args
	return d.run(ctx, s, c)
}

// isolateFor is how long calls stay isolated after a failure (see exec).
const isolateFor = 5 * time.Second

// run is exec for a pooled call whose keys and args are set; it returns c
// to the pool.
func (d *Driver) run(ctx context.Context, s *rueidis.Lua, c *call) rueidis.RedisResult {
	return d.call(ctx, op{s: s, c: c})
}

// do is exec for a single command.
func (d *Driver) do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	return d.call(ctx, op{cmd: cmd})
}

// op is a script with its pooled call, or a single command.
type op struct {
	s   *rueidis.Lua
	c   *call
	cmd rueidis.Completed
}

func (o op) run(ctx context.Context, client rueidis.Client) rueidis.RedisResult {
	if o.s == nil {
		return client.Do(ctx, o.cmd)
	}
	r := o.s.Exec(ctx, client, o.c.keys, o.c.args)
	o.c.put()
	return r
}

// call runs o as exec describes.
func (d *Driver) call(ctx context.Context, o op) rueidis.RedisResult {
	done := ctx.Done()
	if done == nil || time.Now().UnixNano() >= d.isolateUntil.Load() {
		r := o.run(ctx, d.client)
		if done != nil && r.NonRedisError() != nil {
			d.isolate()
		}
		return r
	}
	ch := make(chan rueidis.RedisResult, 1)
	go func() { ch <- o.run(ctx, d.client) }()
	select {
	case r := <-ch:
		if r.NonRedisError() != nil {
			d.isolate()
		}
		return r
	case <-done:
		d.isolate()
		return rueidis.NewErrorResult(ctx.Err())
	}
}

func (d *Driver) isolate() { d.isolateUntil.Store(time.Now().Add(isolateFor).UnixNano()) }
