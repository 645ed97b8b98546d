package redis

import (
	"context"

	"github.com/redis/rueidis"
)

// exec runs script s and returns as soon as ctx ends, even when the client
// would keep waiting for the reply: rueidis honours a context's
// cancellation in flight only in some pipelining states (a connection
// with unanswered, abandoned requests delays new ones until their replies
// arrive). For a context that can end, the script runs on its own
// goroutine, which finishes when the client returns; the call itself
// returns the context's error at once. A context that can never end
// (context.Background) runs inline, without that goroutine.
func (d *Driver) exec(ctx context.Context, s *rueidis.Lua, keys, args []string) rueidis.RedisResult {
	done := ctx.Done()
	if done == nil {
		return s.Exec(ctx, d.client, keys, args)
	}
	ch := make(chan rueidis.RedisResult, 1)
	go func() { ch <- s.Exec(ctx, d.client, keys, args) }()
	select {
	case r := <-ch:
		return r
	case <-done:
		return rueidis.NewErrorResult(ctx.Err())
	}
}

// do is exec for a single command.
func (d *Driver) do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	done := ctx.Done()
	if done == nil {
		return d.client.Do(ctx, cmd)
	}
	ch := make(chan rueidis.RedisResult, 1)
	go func() { ch <- d.client.Do(ctx, cmd) }()
	select {
	case r := <-ch:
		return r
	case <-done:
		return rueidis.NewErrorResult(ctx.Err())
	}
}
