package benchmarks

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// RedisCounter returns a Counter over INFO commandstats and INFO cpu of
// the server c talks to: the sum of calls of every command (those run
// inside scripts included, as Redis counts them, and INFO too, which
// SyncGuard's acquire script calls, less the counter's own INFO calls),
// the calls of EVAL, EVALSHA and FCALL (one per script run), and
// used_cpu_user + used_cpu_sys, and the usec of every command.
func RedisCounter(c rueidis.Client) Counter {
	var own int64 // INFO calls made by this counter before the current one
	return func() (Count, error) {
		defer func() { own++ }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.Do(ctx, c.B().Info().Section("commandstats", "cpu").Build()).ToString()
		if err != nil {
			return Count{}, err
		}
		var n Count
		for line := range strings.Lines(s) {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			if !ok {
				continue
			}
			if name == "used_cpu_user" || name == "used_cpu_sys" {
				if sec, err := strconv.ParseFloat(rest, 64); err == nil {
					n.CPU += time.Duration(sec * float64(time.Second))
				}
				continue
			}
			if !strings.HasPrefix(name, "cmdstat_") {
				continue
			}
			name = strings.TrimPrefix(name, "cmdstat_")
			v, err := strconv.ParseInt(statField(rest, "calls="), 10, 64)
			if err != nil {
				continue
			}
			switch name {
			case "info":
				v -= own
			case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
				n.Scripts += v
			}
			n.Cmds += v
			if us, err := strconv.ParseInt(statField(rest, "usec="), 10, 64); err == nil && name != "info" {
				if n.Usec == nil {
					n.Usec = map[string]int64{}
				}
				n.Usec[name] = us
			}
		}
		return n, nil
	}
}

// statField returns the value of the field that starts with name (such as
// "calls=") in a commandstats line's value, or "".
func statField(s, name string) string {
	i := strings.Index(s, name)
	if i < 0 {
		return ""
	}
	s = s[i+len(name):]
	if j := strings.IndexByte(s, ','); j >= 0 {
		s = s[:j]
	}
	return s
}

// isScript reports whether a commandstats name runs a script.
func isScript(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// serverTime is the Redis thread's time spent executing the commands a
// library sent, from the usec deltas of INFO commandstats: every script
// (its usec includes the commands it ran inside) plus the commands the
// library sends outside scripts (topLevel). Commands run inside scripts
// are also counted under their own names; adding those would count them
// twice. -1 when unknown.
func serverTime(n Count, topLevel []string) time.Duration {
	if n.Cmds < 0 || n.Usec == nil {
		return -1
	}
	var us int64
	for name, v := range n.Usec {
		if isScript(name) || slices.Contains(topLevel, name) {
			us += v
		}
	}
	return time.Duration(us) * time.Microsecond
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
