package conformance

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// G. Validation, keys and errors: cases 62–75 (65 and 69 are unit cases).

// keyOps runs Acquire, IsLocked and LookupByKey with key and reports each
// error.
func (c *tc[C]) keyOps(key string, fn func(op string, err error)) {
	r, err := c.d.Acquire(c.ctx, key, 30*time.Second)
	if err == nil && r.Acquired {
		_, _ = c.d.Release(c.ctx, "", r.LockID)
	}
	fn("Acquire", err)
	_, err = c.d.IsLocked(c.ctx, key)
	fn("IsLocked", err)
	_, err = c.d.LookupByKey(c.ctx, key)
	fn("LookupByKey", err)
}

// idOps runs Release, Extend and LookupByID with lockID and reports each
// error.
func (c *tc[C]) idOps(lockID string, fn func(op string, err error)) {
	_, err := c.d.Release(c.ctx, "", lockID)
	fn("Release", err)
	_, err = c.d.Extend(c.ctx, "", lockID, 30*time.Second)
	fn("Extend", err)
	_, err = c.d.LookupByID(c.ctx, lockID)
	fn("LookupByID", err)
}

// case062: the empty key is invalid.
func case062[C driver.Capabilities](c *tc[C]) {
	c.keyOps("", func(op string, err error) {
		c.wantCode(op+`("")`, err, driver.InvalidArgument, "")
	})
}

// case063: a 600-byte key is invalid.
func case063[C driver.Capabilities](c *tc[C]) {
	c.keyOps(strings.Repeat("x", 600), func(op string, err error) {
		c.wantCode(op+"(600×x)", err, driver.InvalidArgument, "exceeds maximum length")
	})
}

// fill pads prefix with unit (repeated) and then 'a' to exactly n bytes.
func fill(prefix, unit string, n int) string {
	k := prefix + strings.Repeat(unit, (n-len(prefix))/len(unit))
	return k + strings.Repeat("a", n-len(k))
}

// case064: 512 bytes is the limit, measured in UTF-8 bytes.
func case064[C driver.Capabilities](c *tc[C]) {
	for _, k := range []string{fill(c.key("a:"), "a", driver.MaxKeyBytes), fill(c.key("lock:"), "🔒", driver.MaxKeyBytes)} {
		r := c.mustAcquire(k, 30*time.Second)
		c.wantLocked(k, true)
		c.wantRelease(r.LockID, true)
	}
	if _, err := driver.NormalizeKey(strings.Repeat("🔒", 128)); err != nil {
		c.Errorf("NormalizeKey(128×🔒, 512 bytes): %v; want accepted", err)
	}
	c.keyOps(fill(c.key("x:"), "x", driver.MaxKeyBytes+1), func(op string, err error) {
		c.wantCode(op+"(513 bytes)", err, driver.InvalidArgument, "exceeds maximum length")
	})
}

// case066: the empty lock ID is invalid.
func case066[C driver.Capabilities](c *tc[C]) {
	c.idOps("", func(op string, err error) {
		c.wantCode(op+`("")`, err, driver.InvalidArgument, "invalid lockId format")
	})
}

// malformedIDs lists the lock IDs of case 67.
func malformedIDs() []string {
	base := "ABCDEFGHIJKLMNOPQRSTUV" // 22 valid characters
	ids := []string{
		"invalid-lockid", "too-short", strings.Repeat("a", 44), "invalid!@#$%", "spaces not allowed",
		strings.Repeat(" ", 22), " " + base[:21], base[:21] + " ",
	}
	for _, n := range []int{1, 7, 21, 23, 26, 36} {
		ids = append(ids, strings.Repeat("A", n))
	}
	for _, ch := range []string{"+", "/", "=", "@", "!", "#", "$", "%", "&", "*", " ", "\t", "\n"} {
		ids = append(ids, base[:10]+ch+base[11:])
	}
	// Cyrillic look-alikes: 22 characters, one of them non-ASCII.
	ids = append(ids, "\u0410"+base[1:], base[:19]+"\u0422"+base[20:])
	return ids
}

// case067: malformed lock IDs are rejected by every ID-taking operation.
func case067[C driver.Capabilities](c *tc[C]) {
	for _, id := range malformedIDs() {
		c.idOps(id, func(op string, err error) {
			c.wantCode(fmt.Sprintf("%s(%q)", op, id), err, driver.InvalidArgument, "invalid lockId format")
		})
	}
}

// case068: well-formed lock IDs are accepted (and simply not found).
func case068[C driver.Capabilities](c *tc[C]) {
	for _, id := range []string{
		"ABCDEFGHIJKLMNOPQRSTUV", "abcdefghijklmnopqrstuv", "0123456789ABCDEFGHIJKL",
		"___---_-_-_-_-_-_-_-_-", "aA0-_bB1-_cC2-_dD3-_eE",
	} {
		r, err := c.d.Release(c.ctx, "", id)
		if err != nil || r.OK {
			c.Errorf("Release(%q) = %+v, %v; want not OK, no error", id, r, err)
		}
	}
}

// case070: TTL validation for Acquire and Extend.
func case070[C driver.Capabilities](c *tc[C]) {
	k := c.key("k")
	held := c.mustAcquire(k, 30*time.Second)
	for _, ttl := range []time.Duration{0, -time.Millisecond, 1500 * time.Microsecond} {
		_, err := c.d.Acquire(c.ctx, c.key("bad"), ttl)
		c.wantCode(fmt.Sprintf("Acquire(ttl %v)", ttl), err, driver.InvalidArgument, "")
		_, err = c.d.Extend(c.ctx, "", held.LockID, ttl)
		c.wantCode(fmt.Sprintf("Extend(ttl %v)", ttl), err, driver.InvalidArgument, "")
	}
	c.wantLocked(c.key("bad"), false)
	if info := c.lookupID(held.LockID); info == nil || info.ExpiresAtMs != held.ExpiresAtMs {
		c.Errorf("the held lock after invalid extends = %+v; want unchanged (ExpiresAtMs %d)", info, held.ExpiresAtMs)
	}
	c.wantRelease(held.LockID, true)
	for _, ms := range []int{100, 1000, 30_000, 3_600_000} {
		r := c.mustAcquire(c.key(fmt.Sprint("ok:", ms)), time.Duration(ms)*time.Millisecond)
		c.wantRelease(r.LockID, true)
	}
}

// case071: absent resources are results, not errors.
func case071[C driver.Capabilities](c *tc[C]) {
	c.wantExtend(foreignID("BBBBBBBBBBBBBBBBBBBBBB"), 30*time.Second, false)
	c.wantLocked(c.key("error:nonexistent:resource"), false)
}

// case072: keys with special characters work end to end. The literal keys
// ".", "..", "__x__" and "a/b" are used unprefixed (only here), because a
// prefix would hide the hazard they test (Firestore document IDs); the
// harness's per-run namespace isolates them.
func case072[C driver.Capabilities](c *tc[C]) {
	keys := []string{
		c.key("key:with:colons"), c.key("key/with/slashes"), c.key("key-with-dashes"),
		c.key("key_with_underscores"), c.key("key.with.dots"),
		"a/b", ".", "..", "__x__", c.key("a/b"), c.key("__x__"),
	}
	for _, k := range keys {
		r, err := c.d.Acquire(c.ctx, k, 10*time.Second)
		if err != nil || !r.Acquired {
			c.Errorf("Acquire(%q) = %+v, %v; want acquired", k, r, err)
			continue
		}
		if !c.isLocked(k) {
			c.Errorf("IsLocked(%q) = false; want true", k)
		}
		if info := c.lookupID(r.LockID); info == nil || info.KeyHash != driver.HashKey(k) {
			c.Errorf("LookupByID(lock of %q) = %+v; want its lock", k, info)
		}
		if info := c.lookupKey(k); info == nil || info.LockIDHash != driver.HashKey(r.LockID) {
			c.Errorf("LookupByKey(%q) = %+v; want its lock", k, info)
		}
		if rr := c.release(r.LockID); !rr.OK {
			c.Errorf("Release(lock of %q) = %+v; want OK", k, rr)
		}
		if c.isLocked(k) {
			c.Errorf("IsLocked(%q) after release = true", k)
		}
	}
}

// case073: Unicode keys.
func case073[C driver.Capabilities](c *tc[C]) {
	for _, name := range []string{"key-with-emoji-🔒", "clé-française", "キー", "ключ"} {
		k := c.key(name)
		r := c.mustAcquire(k, 30*time.Second)
		c.wantLocked(k, true)
		c.wantRelease(r.LockID, true)
	}
}

// case074: a storm of invalid calls leaves the driver working.
func case074[C driver.Capabilities](c *tc[C]) {
	gather(10, func(int) {
		_, err1 := c.d.Acquire(c.ctx, "", 30*time.Second)
		_, err2 := c.d.Release(c.ctx, "", "invalid")
		if err1 == nil || err2 == nil {
			c.Errorf("invalid calls returned no error: %v, %v", err1, err2)
		}
	})
	r := c.mustAcquire(c.key("k"), 30*time.Second)
	c.wantRelease(r.LockID, true)
}

// case075: every error is a *LockError with a code and a message.
func case075[C driver.Capabilities](c *tc[C]) {
	_, e1 := c.d.Acquire(c.ctx, "", 30*time.Second)
	_, e2 := c.d.IsLocked(c.ctx, "")
	_, e3 := c.d.LookupByKey(c.ctx, "")
	_, e4 := c.d.Release(c.ctx, "", "invalid")
	for i, err := range []error{e1, e2, e3, e4} {
		var le *syncguard.LockError
		if !errors.As(err, &le) {
			c.Errorf("error %d: %v (%T); want a *syncguard.LockError", i, err, err)
			continue
		}
		if le.Code == 0 || le.Message == "" {
			c.Errorf("error %d: Code %v, Message %q; want both set", i, le.Code, le.Message)
		}
	}
}
