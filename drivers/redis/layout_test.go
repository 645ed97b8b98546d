package redis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// TestCRC16 checks the slot function against values Redis documents
// (CLUSTER KEYSLOT).
func TestCRC16(t *testing.T) {
	tests := []struct {
		in   string
		slot uint16
	}{
		{"123456789", 0x31C3 & (numSlots - 1)}, // CRC-16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"bar", 5061},
		{"hello", 866},
		{"", 0},
	}
	for _, tt := range tests {
		if got := keySlot(tt.in); got != tt.slot {
			t.Errorf("keySlot(%q) = %d; want %d", tt.in, got, tt.slot)
		}
		if got := crc16([]byte(tt.in)); got != crc16s(tt.in) {
			t.Errorf("crc16 and crc16s disagree on %q", tt.in)
		}
	}
}

// TestSlotTags: every slot has a tag, the tag hashes to its slot, and tags
// are short.
func TestSlotTags(t *testing.T) {
	tags := slotTags()
	for s, tag := range tags {
		if tag == "" || len(tag) > 4 {
			t.Fatalf("slot %d: tag %q", s, tag)
		}
		if got := keySlot(tag); got != uint16(s) {
			t.Fatalf("tag %q of slot %d hashes to %d", tag, s, got)
		}
	}
}

// TestSlotTagsMatchServer asks the cluster (CLUSTER KEYSLOT) where a
// sample of key names lands.
func TestSlotTagsMatchServer(t *testing.T) {
	t.Parallel()
	c := clusterClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	for _, key := range []string{"a", "resource:123", "user/{weird}/key", "café", strings.Repeat("x", 512)} {
		kn, err := d.names(key)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(keySlot(kn.body))
		id := newLockID(keySlot(kn.body))
		idx, _ := d.idKey(id)
		for _, name := range []string{kn.lock(), kn.lock(), kn.rec(), kn.rate(), kn.rel(), kn.sem(), idx} {
			got, err := c.Do(ctx, c.B().ClusterKeyslot().Key(name).Build()).AsInt64()
			if err != nil {
				t.Fatalf("CLUSTER KEYSLOT: %v", err)
			}
			if got != want {
				t.Errorf("CLUSTER KEYSLOT %q = %d; want %d", name, got, want)
			}
		}
	}
}

// FuzzLockIDSlot: any valid lock ID maps to a slot in range without
// panicking, and so does its legacy slot (256 above, for an ID starting
// with '_' only); an ID minted for that slot maps back to it and does not
// start with '-'.
func FuzzLockIDSlot(f *testing.F) {
	f.Add("AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("____________________--")
	f.Add("-IVksgpdPRfBXGV1hxGNJg")
	f.Add("_AAAAAAAAAAAAAAAAAAAAA")
	f.Add(driver.NewLockID())
	f.Fuzz(func(t *testing.T, id string) {
		if !driver.ValidLockID(id) {
			return
		}
		s := lockIDSlot(id)
		if s >= numSlots {
			t.Fatalf("slot %d out of range", s)
		}
		if ls, ok := lockIDLegacySlot(id); ok && (id[0] != '_' || ls != s+256 || ls >= numSlots) {
			t.Fatalf("lockIDLegacySlot(%q) = %d for slot %d", id, ls, s)
		}
		if !lockIDInSlot(id, s) {
			t.Fatalf("lockIDInSlot(%q, %d) = false", id, s)
		}
		n := newLockID(s)
		if got := lockIDSlot(n); got != s || n[0] == '-' {
			t.Fatalf("round trip %d → %q → %d", s, n, got)
		}
	})
}

// TestNamespaceIsolation: user keys that look like internal keys
// (contract §3's "id:<22 chars>" and "fence:<prefix>:x") get names in the
// lock namespace and never alias an index or a fence counter.
func TestNamespaceIsolation(t *testing.T) {
	c := singleClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	r, err := d.Acquire(ctx, "resource", driver.DefaultTTL)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	// Run the real key's counter far ahead of the time floor: a look-alike
	// key that aliased it would get a fence above that.
	real, _ := d.names("resource")
	ahead := driver.FenceFloor(time.Now().Add(time.Hour).UnixMicro())
	if err := c.Do(ctx, c.B().Hset().Key(real.lock()).FieldValue().FieldValue("n", ahead.String()).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id:" + r.LockID, "fence:" + d.KeyPrefix() + ":resource", "fence:resource", "lock:resource"} {
		kn, err := d.names(key)
		if err != nil {
			t.Fatal(err)
		}
		idx, _ := d.idKey(r.LockID)
		real, _ := d.names("resource")
		for _, internal := range []string{idx, real.lock(), real.lock()} {
			if kn.lock() == internal {
				t.Errorf("lock key of %q aliases %q", key, internal)
			}
		}
		if ok, err := d.IsLocked(ctx, key); err != nil || ok {
			t.Errorf("IsLocked(%q) = %v, %v; want false (no aliasing)", key, ok, err)
		}
		a, err := d.Acquire(ctx, key, driver.DefaultTTL)
		if err != nil || !a.Acquired || a.Fence >= ahead {
			t.Errorf("Acquire(%q) = %+v, %v; want a fresh lock with a fence at the time floor, below %v", key, a, err, ahead)
		}
	}
	// The original lock is intact.
	if info, err := d.LookupByID(ctx, r.LockID); err != nil || info == nil {
		t.Fatalf("LookupByID after look-alike keys = %v, %v", info, err)
	}
}

func TestNewValidation(t *testing.T) {
	c := singleClient(t)
	tests := []struct {
		name   string
		opts   []Option
		prefix string
		ok     bool
	}{
		{"default", nil, "syncguard", true},
		{"custom", []Option{WithKeyPrefix("myapp:locks:")}, "myapp:locks", true},
		{"empty", []Option{WithKeyPrefix("")}, "", true},
		{"fence segment", []Option{WithKeyPrefix("a:fence:b")}, "", false},
		{"fence suffix", []Option{WithKeyPrefix("myfence")}, "", false},
		{"brace", []Option{WithKeyPrefix("a{b}")}, "", false},
		{"too long", []Option{WithKeyPrefix(strings.Repeat("p", 401))}, "", false},
		{"nil option", []Option{nil}, "syncguard", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(c, tt.opts...)
			if tt.ok != (err == nil) {
				t.Fatalf("New: err = %v; want ok=%v", err, tt.ok)
			}
			if err != nil {
				if driver.CodeOf(err) != driver.InvalidArgument {
					t.Errorf("code = %v; want InvalidArgument", driver.CodeOf(err))
				}
				return
			}
			defer d.Close()
			if diff := cmp.Diff(tt.prefix, d.KeyPrefix()); diff != "" {
				t.Errorf("prefix (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := New(nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("New(nil) err = %v; want InvalidArgument", err)
	}
}

// TestLongKeysAndPrefix: the longest keys fit under a long prefix; over
// the budget they are hashed, never rejected.
func TestLongKeysAndPrefix(t *testing.T) {
	c := singleClient(t)
	d := newDriver(t, c, WithKeyPrefix(testPrefix(strings.Repeat("p", 300))))
	ctx := context.Background()
	key := strings.Repeat("é", 256) // 512 bytes
	r, err := d.Acquire(ctx, key, driver.DefaultTTL)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire(512-byte key) = %+v, %v", r, err)
	}
	kn, _ := d.names(key)
	if n := len(kn.lock()); n > storageLimit {
		t.Errorf("lock key is %d bytes; budget %d", n, storageLimit)
	}
	info, err := d.LookupByKey(ctx, key)
	if err != nil || info == nil || info.Key != key {
		t.Fatalf("LookupByKey = %+v, %v", info, err)
	}
}

func TestParseRecord(t *testing.T) {
	id := driver.NewLockID()
	good := id + "1700000000000|1699999990000|42|user:1|with|bars"
	r, ok := parseRecord(good)
	if !ok {
		t.Fatal("parseRecord(good) failed")
	}
	want := &driver.LockInfo{
		Key: "user:1|with|bars", LockID: id,
		Fence: 42, ExpiresAtMs: 1700000000000, AcquiredAtMs: 1699999990000,
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("parseRecord (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", id, id + "1|2|", id + "x|2|3|k", id + "1|2|0|k", id + "1|2|1000000000000000|k"} {
		if _, ok := parseRecord(bad); ok {
			t.Errorf("parseRecord(%q) accepted", bad)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(driver.NewLockID() + "1700000000000|1699999990000|42|user:1")
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA|||")
	f.Fuzz(func(t *testing.T, v string) {
		r, ok := parseRecord(v)
		if ok && (r.Fence < 1 || len(r.LockID) != driver.LockIDLen) {
			t.Fatalf("accepted %q as %+v", v, r)
		}
	})
}

// FuzzValidatePrefix: the prefix validator never panics, and an accepted
// prefix keeps the hash tag first in every key name and leaves room for
// the longest keys.
func FuzzValidatePrefix(f *testing.F) {
	for _, s := range []string{"syncguard", "", "a:fence:b", "x{y}", "app::", strings.Repeat("p", 400)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := validatePrefix(p)
		if err != nil {
			if driver.CodeOf(err) != driver.InvalidArgument {
				t.Fatalf("validatePrefix(%q): %v; want InvalidArgument", p, err)
			}
			return
		}
		if strings.ContainsAny(got, "{}") || len(got) > maxPrefixLen || strings.HasSuffix(got, ":") {
			t.Fatalf("validatePrefix(%q) accepted %q", p, got)
		}
		d := &Driver{prefix: got, bodyLimit: storageLimit - len(got) - 1 - layoutOverhead}
		kn, err := d.names(strings.Repeat("k", driver.MaxKeyBytes))
		if err != nil {
			t.Fatalf("names under prefix %q: %v", got, err)
		}
		if n := len(kn.lock()); n > storageLimit {
			t.Fatalf("lock key %d bytes under prefix %q", n, got)
		}
	})
}
