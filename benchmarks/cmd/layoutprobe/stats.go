package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// stats is a snapshot of INFO commandstats, cpu and stats.
type stats struct {
	calls, usec map[string]int64
	cpu         time.Duration
	expired     int64
}

func readStats(ctx context.Context, c rueidis.Client) (stats, error) {
	s, err := c.Do(ctx, c.B().Info().Section("commandstats", "cpu", "stats").Build()).ToString()
	if err != nil {
		return stats{}, err
	}
	st := stats{calls: map[string]int64{}, usec: map[string]int64{}}
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "used_cpu_user", "used_cpu_sys":
			if sec, err := strconv.ParseFloat(rest, 64); err == nil {
				st.cpu += time.Duration(sec * float64(time.Second))
			}
			continue
		case "expired_keys":
			st.expired, _ = strconv.ParseInt(rest, 10, 64)
			continue
		}
		if !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		st.calls[name], _ = strconv.ParseInt(field(rest, "calls="), 10, 64)
		st.usec[name], _ = strconv.ParseInt(field(rest, "usec="), 10, 64)
	}
	return st, nil
}

func field(s, name string) string {
	i := strings.Index(s, name)
	if i < 0 {
		return ""
	}
	s = s[i+len(name):]
	if j := strings.IndexAny(s, ",\r\n"); j >= 0 {
		s = s[:j]
	}
	return s
}

func isScript(name string) bool {
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// delta is b − a: the calls and usec of every command.
type delta struct {
	calls, usec map[string]int64
	cpu         time.Duration
	expired     int64
}

func diff(a, b stats) delta {
	d := delta{calls: map[string]int64{}, usec: map[string]int64{}, cpu: b.cpu - a.cpu, expired: b.expired - a.expired}
	for k, v := range b.calls {
		if n := v - a.calls[k]; n != 0 {
			d.calls[k] = n
		}
	}
	for k, v := range b.usec {
		if n := v - a.usec[k]; n != 0 {
			d.usec[k] = n
		}
	}
	return d
}

// inner is the number of commands run inside scripts plus top-level
// commands, less the INFO/CONFIG calls of the harness: every command
// that is not a script.
func (d delta) commands() (scripts, others int64) {
	for k, v := range d.calls {
		switch {
		case isScript(k):
			scripts += v
		case k == "info" || k == "config" || k == "script" || k == "flushall" || k == "scan" || k == "unlink" || k == "hello" || k == "client":
		default:
			others += v
		}
	}
	return
}

// serverUsec is the time of the scripts (their inner commands included)
// plus the top-level commands the variant sends (as benchmarks/counter.go).
func (d delta) serverUsec(topLevel []string) int64 {
	var us int64
	for k, v := range d.usec {
		if isScript(k) {
			us += v
		}
		for _, t := range topLevel {
			if k == t {
				us += v
			}
		}
	}
	return us
}
