package conformance

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// Fenced records (docs/contract.md#fenced-records): R01–R13.

func (c *tc[C]) put(name string, fence syncguard.Fence, value string, ttl time.Duration) driver.PutResult {
	c.Helper()
	r, err := c.b.PutRecord(c.ctx, name, fence, []byte(value), ttl)
	if err != nil {
		c.Fatalf("PutRecord(%q, %v): unexpected error: %v", name, fence, err)
	}
	return r
}

func (c *tc[C]) get(name string) *driver.Record {
	c.Helper()
	r, err := c.b.GetRecord(c.ctx, name)
	if err != nil {
		c.Fatalf("GetRecord(%q): unexpected error: %v", name, err)
	}
	return r
}

// wantRecord asserts the value and fence stored under name.
func (c *tc[C]) wantRecord(name, value string, fence syncguard.Fence) *driver.Record {
	c.Helper()
	r := c.get(name)
	if r == nil {
		c.Fatalf("GetRecord(%q) = nil; want value %q with fence %v", name, value, fence)
	}
	if string(r.Value) != value || r.Fence != fence {
		c.Fatalf("GetRecord(%q) = value %q fence %v; want %q, %v", name, r.Value, r.Fence, value, fence)
	}
	return r
}

func (c *tc[C]) wantPut(name string, fence syncguard.Fence, value string, want driver.PutResult) {
	c.Helper()
	if diff := cmp.Diff(want, c.put(name, fence, value, 0)); diff != "" {
		c.Fatalf("PutRecord(%q, fence %v) (-want +got):\n%s", name, fence, diff)
	}
}

// R01: a put into an empty name is stored.
func r01[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 3, "v3", driver.PutResult{Stored: true, Fence: 3})
	r := c.wantRecord(n, "v3", 3)
	if r.ExpiresAtMs != 0 {
		c.Errorf("ExpiresAtMs of a record without TTL = %d; want 0", r.ExpiresAtMs)
	}
}

// R02: the same fence may write again (the same holder).
func r02[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 3, "first", driver.PutResult{Stored: true, Fence: 3})
	c.wantPut(n, 3, "second", driver.PutResult{Stored: true, Fence: 3})
	c.wantRecord(n, "second", 3)
}

// R03: an older fence is refused, reporting the current fence, and changes
// nothing.
func r03[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 5, "v5", driver.PutResult{Stored: true, Fence: 5})
	c.wantPut(n, 4, "v4", driver.PutResult{Stored: false, Fence: 5})
	c.wantRecord(n, "v5", 5)
}

// R04: a newer fence replaces the record.
func r04[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 5, "v5", driver.PutResult{Stored: true, Fence: 5})
	c.wantPut(n, 9, "v9", driver.PutResult{Stored: true, Fence: 9})
	c.wantRecord(n, "v9", 9)
}

// R05: an absent record is nil, not an error.
func r05[C driver.Capabilities](c *tc[C]) {
	if r := c.get(c.key("absent")); r != nil {
		c.Errorf("GetRecord(absent) = %+v; want nil", r)
	}
}

// R06: a record with a TTL expires.
func r06[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	before := nowMs()
	if r := c.put(n, 1, "v", c.tm.Short); !r.Stored {
		c.Fatalf("PutRecord = %+v; want stored", r)
	}
	r := c.wantRecord(n, "v", 1)
	skew := clockSkew.Milliseconds()
	if lo := before + c.tm.Short.Milliseconds() - skew; r.ExpiresAtMs < lo || r.ExpiresAtMs > nowMs()+c.tm.Short.Milliseconds()+skew {
		c.Errorf("ExpiresAtMs = %d; want ≈ now + %v", r.ExpiresAtMs, c.tm.Short)
	}
	c.sleep(c.tm.Wait)
	if r := c.get(n); r != nil {
		c.Errorf("GetRecord %v after a put with TTL %v = %+v; want nil", c.tm.Wait, c.tm.Short, r)
	}
	// An expired record no longer blocks older fences.
	c.wantPut(n, 1, "again", driver.PutResult{Stored: true, Fence: 1})
}

// R07: TTL 0 means no expiry.
func r07[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 1, "forever", driver.PutResult{Stored: true, Fence: 1})
	c.sleep(c.tm.Wait)
	if r := c.wantRecord(n, "forever", 1); r.ExpiresAtMs != 0 {
		c.Errorf("ExpiresAtMs = %d; want 0 (no expiry)", r.ExpiresAtMs)
	}
}

// R08: values are copied in and out.
func r08[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	buf := []byte("original")
	if r, err := c.b.PutRecord(c.ctx, n, 1, buf, 0); err != nil || !r.Stored {
		c.Fatalf("PutRecord = %+v, %v", r, err)
	}
	copy(buf, "MUTATED!")
	r := c.wantRecord(n, "original", 1)
	copy(r.Value, "CHANGED!")
	c.wantRecord(n, "original", 1)
}

// R09: record names are validated and normalised like keys.
func r09[C driver.Capabilities](c *tc[C]) {
	for _, bad := range []struct{ name, msg string }{{"", ""}, {strings.Repeat("x", 600), "exceeds maximum length"}} {
		_, err := c.b.PutRecord(c.ctx, bad.name, 1, []byte("v"), 0)
		c.wantCode(fmt.Sprintf("PutRecord(%d bytes)", len(bad.name)), err, driver.InvalidArgument, bad.msg)
		_, err = c.b.GetRecord(c.ctx, bad.name)
		c.wantCode(fmt.Sprintf("GetRecord(%d bytes)", len(bad.name)), err, driver.InvalidArgument, bad.msg)
		_, err = c.b.DeleteRecord(c.ctx, bad.name, 1)
		c.wantCode(fmt.Sprintf("DeleteRecord(%d bytes)", len(bad.name)), err, driver.InvalidArgument, bad.msg)
	}
	_, err := c.b.PutRecord(c.ctx, c.key("bad-ttl"), 1, []byte("v"), 1500*time.Microsecond)
	c.wantCode("PutRecord(ttl 1.5ms)", err, driver.InvalidArgument, "")
	_, err = c.b.PutRecord(c.ctx, c.key("bad-ttl"), 1, []byte("v"), -time.Second)
	c.wantCode("PutRecord(ttl -1s)", err, driver.InvalidArgument, "")

	c.wantPut(c.key("cafe\u0301"), 2, "nfc", driver.PutResult{Stored: true, Fence: 2})
	c.wantRecord(c.key("caf\u00e9"), "nfc", 2)
	longest := fill(c.key("max:"), "a", driver.MaxKeyBytes)
	c.wantPut(longest, 1, "512 bytes", driver.PutResult{Stored: true, Fence: 1})
	c.wantRecord(longest, "512 bytes", 1)
}

// R10: records and locks live in separate namespaces, both ways.
func r10[C driver.Capabilities](c *tc[C]) {
	// A record does not lock, and does not touch the key's fence counter:
	// a record fence far above the time floor does not raise the lock's.
	n := c.key("shared-a")
	high := c.floorNow(time.Hour)
	c.wantPut(n, high, "record", driver.PutResult{Stored: true, Fence: high})
	c.wantLocked(n, false)
	if info := c.lookupKey(n); info != nil {
		c.Errorf("LookupByKey(name of a record) = %+v; want nil", info)
	}
	lo := c.floorNow(-driver.Tolerance)
	r := c.mustAcquire(n, 30*time.Second)
	c.wantFloored("first lock fence of a name holding a record with a fence an hour ahead", r.Fence, lo)
	c.wantRecord(n, "record", high)
	c.wantRelease(r.LockID, true)
	c.wantRecord(n, "record", high)

	// A lock is not a record, and records under its key leave it alone.
	k := c.key("shared-b")
	l := c.mustAcquire(k, 30*time.Second)
	if rec := c.get(k); rec != nil {
		c.Errorf("GetRecord(key of a lock) = %+v; want nil", rec)
	}
	before := c.lookupKey(k)
	c.wantPut(k, high, "beside the lock", driver.PutResult{Stored: true, Fence: high})
	if ok, err := c.b.DeleteRecord(c.ctx, k, high); err != nil || !ok {
		c.Errorf("DeleteRecord = %v, %v; want true", ok, err)
	}
	if diff := cmp.Diff(before, c.lookupKey(k)); diff != "" {
		c.Errorf("record operations changed the lock (-before +after):\n%s", diff)
	}
	c.wantRelease(l.LockID, true)
	r2 := c.mustAcquire(k, 30*time.Second)
	if r2.Fence <= l.Fence || r2.Fence >= high {
		c.Errorf("lock fence after record operations with fence %v = %v; want > %v and untouched by the record", high, r2.Fence, l.Fence)
	}
	c.wantRelease(r2.LockID, true)
}

// R11: concurrent puts of fences 1..20 leave fence 20's value.
func r11[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	gather(20, func(i int) {
		f := syncguard.Fence(i + 1)
		r, err := c.b.PutRecord(c.ctx, n, f, []byte(fmt.Sprint("v", i+1)), 0)
		if err != nil {
			c.Errorf("PutRecord(fence %v): %v", f, err)
			return
		}
		if r.Stored && r.Fence != f || !r.Stored && r.Fence <= f {
			c.Errorf("PutRecord(fence %v) = %+v; want stored with %v, or refused by a newer fence", f, r, f)
		}
	})
	c.wantRecord(n, "v20", 20)
}

// R12: DeleteRecord deletes only with a fence ≥ the stored one.
func r12[C driver.Capabilities](c *tc[C]) {
	del := func(name string, f syncguard.Fence, want bool) {
		c.Helper()
		if ok, err := c.b.DeleteRecord(c.ctx, name, f); err != nil || ok != want {
			c.Fatalf("DeleteRecord(%q, %v) = %v, %v; want %v", name, f, ok, err, want)
		}
	}
	n := c.key("rec")
	c.wantPut(n, 5, "v", driver.PutResult{Stored: true, Fence: 5})
	del(n, 4, false)
	c.wantRecord(n, "v", 5)
	del(n, 5, true)
	if r := c.get(n); r != nil {
		c.Errorf("GetRecord after delete = %+v; want nil", r)
	}
	del(n, 5, false)
	n2 := c.key("rec2")
	c.wantPut(n2, 5, "v", driver.PutResult{Stored: true, Fence: 5})
	del(n2, 6, true)
	del(c.key("absent"), 1, false)
}

// R13: record operations report context errors like lock operations.
func r13[C driver.Capabilities](c *tc[C]) {
	n := c.key("rec")
	c.wantPut(n, 1, "v", driver.PutResult{Stored: true, Fence: 1})
	dctx, cancel := context.WithDeadline(c.ctx, time.Now().Add(-time.Second))
	defer cancel()
	for _, m := range []struct {
		ctx  context.Context
		code driver.Code
	}{{cancelledContext(c.ctx), driver.Aborted}, {dctx, driver.NetworkTimeout}} {
		_, err := c.b.PutRecord(m.ctx, n, 2, []byte("x"), 0)
		c.wantCode("PutRecord", err, m.code, "")
		_, err = c.b.GetRecord(m.ctx, n)
		c.wantCode("GetRecord", err, m.code, "")
		_, err = c.b.DeleteRecord(m.ctx, n, 2)
		c.wantCode("DeleteRecord", err, m.code, "")
	}
	c.wantRecord(n, "v", 1)
}
