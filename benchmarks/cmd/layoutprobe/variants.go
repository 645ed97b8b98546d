package main

import (
	"crypto/sha1"
	"embed"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/redis/rueidis"
)

//go:embed testdata/scripts
var scriptFS embed.FS

// script is one Lua script, run by EVALSHA.
type script struct {
	name, src, sha string
	lua            *rueidis.Lua
}

func loadScript(path string) *script {
	b, err := scriptFS.ReadFile("testdata/scripts/" + path)
	if err != nil {
		panic(err)
	}
	return newScript(path, string(b))
}

func newScript(name, src string) *script {
	h := sha1.Sum([]byte(src))
	return &script{name: name, src: src, sha: hex.EncodeToString(h[:]), lua: rueidis.NewLuaScript(src)}
}

// step is one half of a pair: a script with its keys and arguments, or a
// plain command (cmd), and the check of its reply.
type step struct {
	s          *script
	keys, args func(p *pair) []string
	cmd        func(c rueidis.Client, p *pair) rueidis.Completed
	want       func(r rueidis.RedisResult) error
}

func (st step) build(c rueidis.Client, p *pair) rueidis.Completed {
	if st.cmd != nil {
		return st.cmd(c, p)
	}
	return c.B().Evalsha().Sha1(st.s.sha).Numkeys(int64(len(st.keys(p)))).Key(st.keys(p)...).Arg(st.args(p)...).Build()
}

// variant is an acquire+release pair of one layout (or a calibration).
type variant struct {
	name, desc string
	acq, rel   step
	topLevel   []string // commandstats names sent outside scripts
	tracking   bool     // client with CLIENT TRACKING OPTOUT NOLOOP, as rueidislock's
}

func wantArray1(r rueidis.RedisResult) error {
	v, err := r.ToArray()
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return fmt.Errorf("empty reply")
	}
	n, err := v[0].AsInt64()
	if err != nil || n != 1 {
		return fmt.Errorf("reply %v, want {1, ...}", v)
	}
	return nil
}

func wantInt1(r rueidis.RedisResult) error {
	n, err := r.AsInt64()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("reply %d, want 1", n)
	}
	return nil
}

func wantOK(r rueidis.RedisResult) error {
	s, err := r.ToString()
	if err != nil {
		return err
	}
	if s != "OK" {
		return fmt.Errorf("reply %q, want OK", s)
	}
	return nil
}

func keys(f ...func(p *pair) string) func(p *pair) []string {
	return func(p *pair) []string {
		out := make([]string, len(f))
		for i, g := range f {
			out[i] = g(p)
		}
		return out
	}
}

func lit(s string) func(*pair) string { return func(*pair) string { return s } }

var (
	fLock   = func(p *pair) string { return p.lock }
	fIndex  = func(p *pair) string { return p.index }
	fQueue  = func(p *pair) string { return p.queue }
	fFence  = func(p *pair) string { return p.fence }
	fID     = func(p *pair) string { return p.lockID }
	fKey    = func(p *pair) string { return p.key }
	fSP     = func(p *pair) string { return p.sp }
	fRecord = func(p *pair) string {
		// a typical held lock string (string layout), for the parse calibrations
		return p.lockID + "|1765123456789|1765123456759|176512345675901||" + p.key
	}
)

const inbox = "AbCdEfGh" // 8 characters, as the driver's inbox

// headAcq / headRel are the keys and arguments of the current driver
// (drivers/redis/locks.go): acquire c.set2(lock, index, lockID, ttl, key,
// ttl+tol-1); keyed release {index, lock, queue}, {lockID, sp}.
var (
	headAcqKeys = keys(fLock, fIndex)
	headAcqArgs = keys(fID, lit("30000"), fKey, lit("30999"))
	headRelKeys = keys(fIndex, fLock, fQueue)
	headRelArgs = keys(fID, fSP)
)

func variants() []*variant {
	v5a, v5r := loadScript("5e86ecb/acquire.lua"), loadScript("5e86ecb/release.lua")
	ha, hr := loadScript("54eda22/acquire.lua"), loadScript("54eda22/release.lua")
	hnr := loadScript("head-nopexpire/release.lua")
	sa, sr := loadScript("string/acquire.lua"), loadScript("string/release.lua")
	na, nr := loadScript("string-noidx/acquire.lua"), loadScript("string-noidx/release.lua")
	kha, khr := loadScript("skel/head-acquire.lua"), loadScript("skel/head-release.lua")
	ksa, ksr := loadScript("skel/string-acquire.lua"), loadScript("skel/string-release.lua")
	ret1 := loadScript("calib/return1.lua")
	casDelete := newScript("raw-casdelete", `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
	// rueidislock v1.0.79 (rueidislock/lock.go): acqat and delkey, verbatim.
	rlAcq := newScript("rueidislock-acqat", `local r = redis.call("SET",KEYS[1],ARGV[1],"NX","PXAT",ARGV[2]);redis.call("GET",KEYS[1]);return r`)
	rlDel := newScript("rueidislock-delkey", `if redis.call("GET",KEYS[1]) == ARGV[1] then return redis.call("DEL",KEYS[1]) end;return 0`)
	deadline := func(*pair) string { return "4102444800000" } // PXAT far in the future

	calib := func(name, desc string, s *script, k, a func(*pair) []string, want func(rueidis.RedisResult) error) *variant {
		st := step{s: s, keys: k, args: a, want: want}
		return &variant{name: name, desc: desc, acq: st, rel: st}
	}
	parseArgs := keys(fRecord, fID)
	return []*variant{
		{name: "5e86ecb", desc: "main 5e86ecb: packed record + fence hash, release by lock ID",
			acq: step{s: v5a, keys: keys(fLock, fFence, fIndex, fQueue),
				args: keys(fID, lit("30000"), fKey, fSP, lit("5000"), lit("900000000000000"), lit("1000"), lit(""), lit("3000"), lit(inbox)), want: wantArray1},
			rel: step{s: v5r, keys: keys(fIndex), args: keys(fID, fSP, lit("1000"), lit("5000"), lit("900000000000000")), want: wantInt1}},
		{name: "head", desc: "HEAD 54eda22: lock hash + index, keyed release",
			acq: step{s: ha, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: hr, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "head-nopexpire", desc: "HEAD, release without PEXPIRE/PEXPIREAT",
			acq: step{s: ha, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: hnr, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "string", desc: "probe: one string per key (lock + counter), index, keyed release",
			acq: step{s: sa, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: sr, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "string-lean", desc: "probe: string layout, TIME's fields converted once, release always PXAT keepAt(n)",
			acq: step{s: loadScript("string-lean/acquire.lua"), keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: loadScript("string-lean/release.lua"), keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "string-noidx", desc: "probe: string layout without the lock-ID index (NOT contract-complete)",
			acq: step{s: na, keys: keys(fLock), args: headAcqArgs, want: wantArray1},
			rel: step{s: nr, keys: keys(fLock), args: keys(fID, fSP), want: wantInt1}},
		{name: "raw", desc: "raw rueidis: SET NX PX + compare-and-delete script", topLevel: []string{"set"},
			acq: step{cmd: func(c rueidis.Client, p *pair) rueidis.Completed {
				return c.B().Set().Key(p.raw).Value(p.lockID).Nx().PxMilliseconds(30000).Build()
			}, want: wantOK},
			rel: step{s: casDelete, keys: keys(func(p *pair) string { return p.raw }), args: keys(fID), want: wantInt1}},
		{name: "rueidislock", desc: "rueidislock v1.0.79 scripts (acqat + delkey), client tracking OPTOUT NOLOOP as rueidislock sets it", tracking: true,
			acq: step{s: rlAcq, keys: keys(func(p *pair) string { return p.rl }), args: keys(func(p *pair) string { return p.rlVal }, deadline), want: wantOK},
			rel: step{s: rlDel, keys: keys(func(p *pair) string { return p.rl }), args: keys(func(p *pair) string { return p.rlVal }, deadline), want: wantInt1}},
		{name: "rueidislock-nocsc", desc: "rueidislock's scripts on a client without tracking",
			acq: step{s: rlAcq, keys: keys(func(p *pair) string { return p.rl }), args: keys(func(p *pair) string { return p.rlVal }, deadline), want: wantOK},
			rel: step{s: rlDel, keys: keys(func(p *pair) string { return p.rl }), args: keys(func(p *pair) string { return p.rlVal }, deadline), want: wantInt1}},
		{name: "skel-head", desc: "skeleton: HEAD's inner commands with constant arguments, no logic",
			acq: step{s: kha, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: khr, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "skel-string", desc: "skeleton: the string probe's inner commands with constant arguments, no logic",
			acq: step{s: ksa, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: ksr, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "cal-return1-head", desc: "calibration: return 1 with the acquire's (2 keys, 4 args) and release's (3 keys, 2 args) shapes",
			acq: step{s: ret1, keys: headAcqKeys, args: headAcqArgs, want: wantInt1},
			rel: step{s: ret1, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "head-acq", desc: "HEAD's acquire + return 1 (release shape): the acquire's share",
			acq: step{s: ha, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: ret1, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "string-acq", desc: "the string probe's acquire + return 1 (release shape)",
			acq: step{s: sa, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: ret1, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "skel-head-acq", desc: "skeleton of HEAD's acquire + return 1",
			acq: step{s: kha, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: ret1, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "skel-string-acq", desc: "skeleton of the string probe's acquire + return 1",
			acq: step{s: ksa, keys: headAcqKeys, args: headAcqArgs, want: wantArray1},
			rel: step{s: ret1, keys: headRelKeys, args: headRelArgs, want: wantInt1}},
		{name: "skel-string-noidx", desc: "skeleton: string-noidx's inner commands with constant arguments, no logic",
			acq: step{s: loadScript("skel/string-noidx-acquire.lua"), keys: keys(fLock), args: headAcqArgs, want: wantArray1},
			rel: step{s: loadScript("skel/string-noidx-release.lua"), keys: keys(fLock), args: keys(fID, fSP), want: wantInt1}},
		calib("cal-tonumber", "calibration: 100 tonumber() of a 13-digit string, twice", loadScript("calib/tonumber.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-coerce", "calibration: 100 arithmetic coercions (s + 0) of a 13-digit string, twice", loadScript("calib/coerce.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-format", "calibration: 100 string.format('|%d|%d|%d|'), twice", loadScript("calib/format.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-return1-2k4a", "calibration: return 1, 2 keys 4 args, twice", ret1, headAcqKeys, headAcqArgs, wantInt1),
		calib("cal-parse-none", "calibration: 100-iteration empty loop, twice", loadScript("calib/parse-none.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-parse-find", "calibration: 100 string.find parses (5 captures), twice", loadScript("calib/parse-find.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-parse-find-num", "calibration: 100 parses + tonumber + compare, twice", loadScript("calib/parse-find-num.lua"), keys(fLock), parseArgs, wantInt1),
		calib("cal-parse-pos", "calibration: 100 parses by plain find + sub, twice", loadScript("calib/parse-pos.lua"), keys(fLock), parseArgs, wantInt1),
	}
}

func findVariants(names string) ([]*variant, error) {
	all := variants()
	if names == "all" {
		return all, nil
	}
	var out []*variant
	for _, n := range strings.Split(names, ",") {
		var found *variant
		for _, v := range all {
			if v.name == n {
				found = v
			}
		}
		if found == nil {
			return nil, fmt.Errorf("unknown variant %q", n)
		}
		out = append(out, found)
	}
	return out, nil
}

func (v *variant) scripts() []*script {
	var out []*script
	for _, s := range []*script{v.acq.s, v.rel.s} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}
