package conformance

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Keys (the one key rule): K01.
//
// [driver.NormalizeKey] is the only key rule: a key is valid if it is
// non-empty UTF-8 of at most [driver.MaxKeyBytes] bytes after NFC, and
// every driver must then accept it for every operation. Nothing else may
// refuse a key: not a NUL byte a database cannot store in a text column,
// not a control character, not a character outside the BMP, not a key
// that exceeds the limit only before normalisation.

// hostileKey is one key of K01 and another spelling of it (an NFD form, a
// singleton that NFC maps away), which must address the same lock, rate
// state and record. alias equals key when the key has only one spelling.
type hostileKey struct {
	what       string
	key, alias string
}

// hostileKeys returns K01's keys, all distinct after normalisation. The
// bare "\x00" is unprefixed (the harness's namespace isolates it), like the
// literal keys of case 72.
func (c *tc[C]) hostileKeys() []hostileKey {
	var ctl strings.Builder
	for r := rune(1); r < 0x20; r++ {
		ctl.WriteRune(r)
	}
	ctl.WriteString("\x7f")
	for r := rune(0x80); r < 0xa0; r++ {
		ctl.WriteRune(r)
	}
	one := func(what, k string) hostileKey { return hostileKey{what, k, k} }
	pair := func(what, nfc, other string) hostileKey { return hostileKey{what, nfc, other} }
	e512 := fill(c.key("512:é:"), "é", driver.MaxKeyBytes)
	return []hostileKey{
		one("bare NUL", "\x00"),
		one("NUL", c.key("nul:\x00")),
		one("NULs", c.key("\x00\x00nul\x00")),
		one("no NUL", c.key("tri:")),
		one("NUL where Ω could be", c.key("tri:\x00")),
		pair("Ω (U+03A9) and the ohm sign (U+2126)", c.key("tri:\u03a9"), c.key("tri:\u2126")),
		one("C0 and C1 controls and DEL", c.key("ctl:"+ctl.String())),
		one("line and paragraph separators, BOM", c.key("sep:\u2028\u2029\ufeff")),
		one("plane 0 (BMP)", c.key("p0:é中\ufffd")),
		one("plane 1 (SMP)", c.key("p1:🔒𝄞")),
		one("plane 2 (SIP)", c.key("p2:\U00020000\U0002a6df")),
		one("plane 3 (TIP)", c.key("p3:\U00030000")),
		one("plane 14 (SSP)", c.key("p14:\U000e0001\U000e0100")),
		one("planes 15 and 16 (private use)", c.key("p15:\U000f0000\U0010fffd")),
		one("noncharacters", c.key("nonchar:\ufffe\uffff\U0010ffff")),
		one("SQL and glob metacharacters", c.key(`meta:'";--%_\*?[a]{b}$1`)),
		pair("NFC/NFD é", c.key("café"), c.key("cafe\u0301")),
		pair("NFC/NFD Hangul", c.key("한글"), c.key("\u1112\u1161\u11ab\u1100\u1173\u11af")),
		pair("NFC/NFD Å and the angstrom sign", c.key("\u00c5"), c.key("\u212b")),
		one("512 bytes", fill(c.key("512:a:"), "a", driver.MaxKeyBytes)),
		one("512 bytes of 4-byte runes", fill(c.key("512:🔒:"), "🔒", driver.MaxKeyBytes)),
		one("512 bytes of NULs", fill(c.key("512:nul:"), "\x00", driver.MaxKeyBytes)),
		one("512 bytes of controls", fill(c.key("512:ctl:"), "\x01\x1f", driver.MaxKeyBytes)),
		// 512 bytes in NFC, about 760 as typed (NFD): the limit applies
		// after normalisation.
		pair("512 bytes in NFC, longer in NFD", e512, norm.NFD.String(e512)),
	}
}

// K01: every key the key rule accepts is locked, fenced, rate-limited and
// recorded by the driver, under each of its spellings, and distinct keys
// never share state.
func k01[C driver.Capabilities](c *tc[C]) {
	keys := c.hostileKeys()
	seen := map[string]string{}
	for _, hk := range keys {
		for _, k := range []string{hk.key, hk.alias} {
			n, err := driver.NormalizeKey(k)
			if err != nil {
				c.Fatalf("%s: NormalizeKey(%q): %v; the key rule must accept it", hk.what, k, err)
			}
			if want, _ := driver.NormalizeKey(hk.key); n != want {
				c.Fatalf("%s: %q and %q normalise differently", hk.what, hk.key, hk.alias)
			}
		}
		n, _ := driver.NormalizeKey(hk.key)
		if other, dup := seen[n]; dup {
			c.Fatalf("%s and %s normalise to one key", hk.what, other)
		}
		seen[n] = hk.what
	}

	// Locks: all keys held at once (distinct keys never contend), each
	// contended under its other spelling and looked up under it.
	const ttl = 30 * time.Second
	first := make([]driver.AcquireResult, len(keys))
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		r, err := c.d.Acquire(c.ctx, hk.key, ttl)
		if err != nil || !r.Acquired || r.Fence == 0 || !driver.ValidLockID(r.LockID) {
			fail("Acquire(key) = %+v, %v; want acquired with a lock ID and a fence", r, err)
			return
		}
		first[i] = r
	})
	if c.Failed() {
		return
	}
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		r := first[i]
		if got, err := c.d.Acquire(c.ctx, hk.alias, ttl); err != nil || got.Acquired || got.Reason != driver.ReasonLocked {
			fail("Acquire(alias) of the held key = %+v, %v; want contended", got, err)
		}
		if ok, err := c.d.IsLocked(c.ctx, hk.alias); err != nil || !ok {
			fail("IsLocked(alias) = %v, %v; want true", ok, err)
		}
		if info, err := c.d.LookupByKey(c.ctx, hk.alias); err != nil || info == nil ||
			info.Key != hk.key || info.LockID != r.LockID || info.Fence != r.Fence {
			fail("LookupByKey(alias) = %+v, %v; want the lock (fence %v)", info, err, r.Fence)
		}
		if info, err := c.d.LookupByID(c.ctx, r.LockID); err != nil || info == nil ||
			info.Key != hk.key || info.Fence != r.Fence {
			fail("LookupByID = %+v, %v; want the lock of the key (fence %v)", info, err, r.Fence)
		}
		if got, err := c.d.Extend(c.ctx, "", r.LockID, ttl); err != nil || !got.OK {
			fail("Extend = %+v, %v; want OK", got, err)
		}
	})

	// Fences: released and taken again under the other spelling, each key
	// fences on from its own counter.
	second := make([]driver.AcquireResult, len(keys))
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		if rr, err := c.d.Release(c.ctx, "", first[i].LockID); err != nil || !rr.OK {
			fail("Release = %+v, %v; want OK", rr, err)
			return
		}
		if ok, err := c.d.IsLocked(c.ctx, hk.key); err != nil || ok {
			fail("IsLocked(key) after release = %v, %v; want false", ok, err)
		}
		r, err := c.d.Acquire(c.ctx, hk.alias, ttl)
		if err != nil || !r.Acquired || r.Fence <= first[i].Fence {
			fail("Acquire(alias) after release = %+v, %v; want acquired with a fence above %v", r, err, first[i].Fence)
			return
		}
		second[i] = r
	})
	if c.Failed() {
		return
	}

	// Records: one per key, written with the key's fence, read back under
	// the other spelling; an older fence is refused.
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		f := second[i].Fence
		if got, err := c.b.PutRecord(c.ctx, hk.key, f, []byte(hk.key), time.Minute); err != nil || !got.Stored {
			fail("PutRecord(key, %v) = %+v, %v; want stored", f, got, err)
		}
	})
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		f := second[i].Fence
		rec, err := c.b.GetRecord(c.ctx, hk.alias)
		if err != nil || rec == nil || string(rec.Value) != hk.key || rec.Fence != f {
			fail("GetRecord(alias) = %+v, %v; want the key's own record (fence %v)", rec, err, f)
		}
		if got, err := c.b.PutRecord(c.ctx, hk.alias, first[i].Fence, []byte("stale"), time.Minute); err != nil || got.Stored || got.Fence != f {
			fail("PutRecord(alias, older fence) = %+v, %v; want refused with fence %v", got, err, f)
		}
		if ok, err := c.b.DeleteRecord(c.ctx, hk.alias, f); err != nil || !ok {
			fail("DeleteRecord(alias, %v) = %v, %v; want deleted", f, ok, err)
		}
		if rr, err := c.d.Release(c.ctx, "", second[i].LockID); err != nil || !rr.OK {
			fail("Release = %+v, %v; want OK", rr, err)
		}
	})

	// Rate: one unit per hour with no burst beyond it: each key's first
	// request is allowed (no key shares another's state), its second,
	// under the other spelling, is refused.
	lim := syncguard.RateLimit{Limit: 1, Period: time.Hour, Burst: 1}
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		if r, err := c.r.AllowN(c.ctx, hk.key, lim, 1); err != nil || r.Allowed != 1 {
			fail("AllowN(key) = %+v, %v; want allowed", r, err)
		}
	})
	c.eachKey(keys, func(i int, hk hostileKey, fail func(string, ...any)) {
		if r, err := c.r.AllowN(c.ctx, hk.alias, lim, 1); err != nil || r.Allowed != 0 || r.RetryAfter <= 0 {
			fail("AllowN(alias) after the key's one unit = %+v, %v; want refused", r, err)
		}
		if err := c.r.ResetRate(c.ctx, hk.alias); err != nil {
			fail("ResetRate(alias): %v", err)
		}
		if r, err := c.r.AllowN(c.ctx, hk.key, lim, 1); err != nil || r.Allowed != 1 {
			fail("AllowN(key) after ResetRate(alias) = %+v, %v; want allowed", r, err)
		}
		_ = c.r.ResetRate(c.ctx, hk.key)
	})
}

// eachKey runs fn for every key concurrently (the keys are distinct) and
// waits; fn reports through fail, which names the key.
func (c *tc[C]) eachKey(keys []hostileKey, fn func(i int, hk hostileKey, fail func(format string, args ...any))) {
	c.Helper()
	var mu sync.Mutex
	gather(len(keys), func(i int) {
		hk := keys[i]
		fn(i, hk, func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			c.Errorf("%s (%s): %s", hk.what, shortKey(hk.key), fmt.Sprintf(format, args...))
		})
	})
}

// shortKey quotes a key for a failure message, eliding the middle of long
// ones.
func shortKey(k string) string {
	if len(k) <= 80 {
		return fmt.Sprintf("%q", k)
	}
	return fmt.Sprintf("%q…(%d bytes)", k[:60], len(k))
}
