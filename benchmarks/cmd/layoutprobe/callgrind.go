package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// runCallgrind counts the instructions of a redis-server run under
// valgrind --tool=callgrind (pid, dump files <outPrefix>.<n>) for pairs
// acquire+release pairs of v on fresh keys, pipelined in batches: warm-up
// pairs, then callgrind_control -z, the measured pairs, callgrind_control -d.
func runCallgrind(ctx context.Context, v *variant, addr string, pid int, outPrefix string, pairs, batch, warm int, flush bool) error {
	c, err := newClient(addr, v.tracking)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range v.scripts() {
		sha, err := c.Do(ctx, c.B().ScriptLoad().Script(s.src).Build()).ToString()
		if err != nil {
			return fmt.Errorf("SCRIPT LOAD %s: %w", s.name, err)
		}
		if sha != s.sha {
			return fmt.Errorf("sha of %s: server %s, local %s", s.name, sha, s.sha)
		}
	}
	if flush {
		if err := c.Do(ctx, c.B().Flushall().Sync().Build()).Error(); err != nil {
			return err
		}
	}
	ns := fmt.Sprintf("cg%d", time.Now().UnixNano())
	if err := runPairs(ctx, c, v, ns+"w", warm, batch); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := c.Do(ctx, c.B().ConfigResetstat().Build()).Error(); err != nil {
		return err
	}
	before, err := readStats(ctx, c)
	if err != nil {
		return err
	}
	if out, err := exec.Command("callgrind_control", "-z", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("callgrind_control -z: %v: %s", err, out)
	}
	start := time.Now()
	if err := runPairs(ctx, c, v, ns, pairs, batch); err != nil {
		return err
	}
	elapsed := time.Since(start)
	prev := dumps(outPrefix)
	if out, err := exec.Command("callgrind_control", "-d", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("callgrind_control -d: %v: %s", err, out)
	}
	after, err := readStats(ctx, c)
	if err != nil {
		return err
	}
	var file string
	for range 100 {
		if d := dumps(outPrefix); len(d) > len(prev) {
			file = d[len(d)-1]
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if file == "" {
		return fmt.Errorf("no new dump %s.*", outPrefix)
	}
	ir, err := totalIr(file)
	if err != nil {
		return err
	}
	d := diff(before, after)
	scripts, others := d.commands()
	var names []string
	for k, n := range d.calls {
		if k != "info" && k != "config" {
			names = append(names, fmt.Sprintf("%s=%.2f", k, float64(n)/float64(pairs)))
		}
	}
	sort.Strings(names)
	fn, err := inclusive(file)
	if err != nil {
		return err
	}
	pp := func(x int64) float64 { return float64(x) / float64(pairs) }
	fmt.Printf("%-20s instr/pair %9.0f  net of serverCron %9.0f  total %d  pairs %d  scripts/pair %.2f  cmds/pair %.2f  expired %d  %.1fs  [%s]  %s\n",
		v.name, pp(ir), pp(ir-fn["serverCron"]), ir, pairs, pp(scripts), pp(others),
		d.expired, elapsed.Seconds(), strings.Join(names, " "), filepath.Base(file))
	var parts []string
	for _, f := range breakdown {
		parts = append(parts, fmt.Sprintf("%s=%.0f", f, pp(fn[f])))
	}
	fmt.Printf("%-20s   inclusive per pair: %s\n", "", strings.Join(parts, " "))
	return nil
}

// runPairs runs n pairs of v on fresh keys of namespace ns, batch
// acquisitions pipelined, then their releases, checking every reply.
func runPairs(ctx context.Context, c rueidis.Client, v *variant, ns string, n, batch int) error {
	for i := 0; i < n; i += batch {
		m := min(batch, n-i)
		ps := make([]*pair, m)
		acq := make(rueidis.Commands, m)
		for j := range ps {
			ps[j] = newPair(ns, i+j)
			acq[j] = v.acq.build(c, ps[j])
		}
		for j, r := range doMulti(ctx, c, v.acq, ps, acq) {
			if err := v.acq.want(r); err != nil {
				return fmt.Errorf("%s acquire %d: %w", v.name, i+j, err)
			}
		}
		rel := make(rueidis.Commands, m)
		for j := range ps {
			rel[j] = v.rel.build(c, ps[j])
		}
		for j, r := range doMulti(ctx, c, v.rel, ps, rel) {
			if err := v.rel.want(r); err != nil {
				return fmt.Errorf("%s release %d: %w", v.name, i+j, err)
			}
		}
	}
	return nil
}

// useExecMulti makes runPairs send scripts through rueidis.Lua.ExecMulti
// (which sends SCRIPT LOAD before each batch) instead of DoMulti of
// EVALSHA commands.
var useExecMulti bool

func doMulti(ctx context.Context, c rueidis.Client, st step, ps []*pair, cmds rueidis.Commands) []rueidis.RedisResult {
	if !useExecMulti || st.s == nil {
		return c.DoMulti(ctx, cmds...)
	}
	ex := make([]rueidis.LuaExec, len(ps))
	for i, p := range ps {
		ex[i] = rueidis.LuaExec{Keys: st.keys(p), Args: st.args(p)}
	}
	return st.s.lua.ExecMulti(ctx, c, ex...)
}

func dumps(prefix string) []string {
	m, _ := filepath.Glob(prefix + ".*")
	sort.Slice(m, func(i, j int) bool { return dumpNum(m[i]) < dumpNum(m[j]) })
	return m
}

func dumpNum(f string) int {
	n, _ := strconv.Atoi(f[strings.LastIndexByte(f, '.')+1:])
	return n
}

// totalIr reads the instruction count of a callgrind dump: its "totals:"
// line (the "summary:" line of the header differs by about 0.05%).
func totalIr(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "totals:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no totals line", file)
}

func newClient(addr string, tracking bool) (rueidis.Client, error) {
	o := rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: !tracking}
	if tracking {
		o.ClientTrackingOptions = []string{"OPTOUT", "NOLOOP"}
		o.PipelineMultiplex = -1
	}
	return rueidis.NewClient(o)
}

// breakdown names the (exported) redis-server and libc functions whose
// inclusive cost runInclusive reports per pair.
var breakdown = []string{"serverCron", "readQueryFromClient", "processCommand", "evalGenericCommand", "luaCallFunction",
	"lua_pcall", "scriptCall", "parseReply", "lua_gc", "strtod", "__vfprintf_internal", "lua_pushlstring", "lua_settable"}

// inclusive returns the inclusive cost of the functions in breakdown,
// from callgrind_annotate --inclusive=yes (the first, outermost entry of
// each name; recursive entries such as call'2 are separate names).
func inclusive(file string) (map[string]int64, error) {
	out, err := exec.Command("callgrind_annotate", "--inclusive=yes", "--threshold=100", file).Output()
	if err != nil {
		return nil, fmt.Errorf("callgrind_annotate: %w", err)
	}
	m := map[string]int64{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(f[0], ",", ""), 10, 64)
		if err != nil {
			continue
		}
		var name string
		for i, x := range f {
			if strings.HasSuffix(x, "%)") && i+1 < len(f) {
				name = f[i+1]
				break
			}
		}
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[i+1:]
		}
		if _, seen := m[name]; !seen {
			m[name] = n
		}
	}
	return m, nil
}
