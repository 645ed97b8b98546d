package benchmarks

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// RedisCounter returns a Counter over INFO commandstats of the server c
// talks to: the sum of calls of every command (those run inside scripts
// included, as Redis counts them, and INFO too, which SyncGuard's acquire
// script calls, less the counter's own INFO calls), and the calls of EVAL,
// EVALSHA and FCALL (one per script run).
func RedisCounter(c rueidis.Client) Counter {
	var own int64 // INFO calls made by this counter before the current one
	return func() (int64, int64, error) {
		defer func() { own++ }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		if err != nil {
			return 0, 0, err
		}
		var total, scripts int64
		for line := range strings.Lines(s) {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok || !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			name = strings.TrimPrefix(name, "cmdstat_")
			calls := rest
			if i := strings.Index(calls, "calls="); i >= 0 {
				calls = calls[i+6:]
			}
			if i := strings.IndexByte(calls, ','); i >= 0 {
				calls = calls[:i]
			}
			n, err := strconv.ParseInt(calls, 10, 64)
			if err != nil {
				continue
			}
			switch name {
			case "info":
				n -= own
			case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
				scripts += n
			}
			total += n
		}
		return total, scripts, nil
	}
}

// CleanRedis deletes every key of the server c talks to whose name
// contains ns (a [Namespace]): the fence counters that SyncGuard keeps per
// key (they never expire, by design) and whatever a library left behind.
// A run on fresh keys creates tens of thousands of them, which would
// otherwise pile up run after run.
func CleanRedis(ctx context.Context, c rueidis.Client, ns string) error {
	var cursor uint64
	for {
		e, err := c.Do(ctx, c.B().Scan().Cursor(cursor).Match("*"+ns+"*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return err
		}
		if len(e.Elements) > 0 {
			if err := c.Do(ctx, c.B().Unlink().Key(e.Elements...).Build()).Error(); err != nil {
				return err
			}
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}
