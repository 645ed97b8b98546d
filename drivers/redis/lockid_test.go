package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// oldLockID is the lock ID of slot that the format before IDs avoided a
// leading '-' gave the random bytes rnd (the previous mintLockID): the
// slot in the first 14 bits as it is, the rest from rnd.
func oldLockID(slot uint16, rnd [16]byte) string {
	b := rnd
	b[0] = byte(slot >> 6)
	b[1] = byte(slot<<2) | b[1]&0x03
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// oldLockIDBit14 is a random old-format lock ID of slot with bit 14 (the
// bit after the slot) set to bit14.
func oldLockIDBit14(slot uint16, bit14 byte) string {
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	rnd[1] = rnd[1]&^0x02 | bit14<<1
	return oldLockID(slot, rnd)
}

// idBits returns the first 14 bits of a lock ID's decoding and bit 14.
func idBits(t *testing.T, id string) (first14 uint16, bit14 byte) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Fatalf("%q: not 16 bytes of base64url: %v", id, err)
	}
	return uint16(b[0])<<6 | uint16(b[1])>>2, b[1] >> 1 & 1
}

// TestLockIDEverySlot mints IDs for every slot: none starts with '-',
// each is valid and maps back to its slot, and its bits are as the Lock
// ID format says (slots 15872..16383 start with '_' and carry slot bit 8
// in bit 14; below them bit 14 stays random).
func TestLockIDEverySlot(t *testing.T) {
	t.Parallel()
	const perSlot = 4
	tests := []struct {
		name      string
		from, to  uint16 // slots, inclusive
		first     byte   // the first character, 0 for any but '-'
		bit14     int    // -1: random
		legacy    bool   // lockIDLegacySlot gives slot + 256
		first14Of func(slot uint16) uint16
	}{
		{"slot>>8 below 62", 0, 15871, 0, -1, false, func(s uint16) uint16 { return s }},
		{"slot>>8 62, once '-'", 15872, 16127, '_', 0, true, func(s uint16) uint16 { return s + 256 }},
		{"slot>>8 63", 16128, numSlots - 1, '_', 1, false, func(s uint16) uint16 { return s }},
	}
	seen := make(map[string]bool, numSlots*perSlot)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bit14s [2]int
			for slot := tt.from; slot <= tt.to; slot++ {
				for range perSlot {
					id := newLockID(slot)
					if id[0] == '-' {
						t.Fatalf("newLockID(%d) = %q starts with '-'", slot, id)
					}
					if tt.first != 0 && id[0] != tt.first {
						t.Fatalf("newLockID(%d) = %q; want first character %q", slot, id, tt.first)
					}
					if !driver.ValidLockID(id) {
						t.Fatalf("newLockID(%d) = %q: invalid", slot, id)
					}
					if got := lockIDSlot(id); got != slot {
						t.Fatalf("lockIDSlot(newLockID(%d) = %q) = %d", slot, id, got)
					}
					if !lockIDInSlot(id, slot) {
						t.Fatalf("lockIDInSlot(%q, %d) = false", id, slot)
					}
					ls, ok := lockIDLegacySlot(id)
					if ok != tt.legacy || ok && ls != slot+256 {
						t.Fatalf("lockIDLegacySlot(newLockID(%d) = %q) = %d, %v; want a legacy slot: %v", slot, id, ls, ok, tt.legacy)
					}
					first14, bit14 := idBits(t, id)
					if want := tt.first14Of(slot); first14 != want {
						t.Fatalf("newLockID(%d) = %q: first 14 bits %d; want %d", slot, id, first14, want)
					}
					if tt.bit14 >= 0 && int(bit14) != tt.bit14 {
						t.Fatalf("newLockID(%d) = %q: bit 14 = %d; want %d", slot, id, bit14, tt.bit14)
					}
					bit14s[bit14]++
					if seen[id] {
						t.Fatalf("newLockID(%d) repeated %q", slot, id)
					}
					seen[id] = true
				}
			}
			// Random: both values, among thousands of draws.
			if tt.bit14 < 0 && (bit14s[0] == 0 || bit14s[1] == 0) {
				t.Errorf("bit 14 over %d IDs: %v; want it random", (int(tt.to)-int(tt.from)+1)*perSlot, bit14s)
			}
		})
	}
}

// TestLockIDOldFormat: IDs minted before IDs avoided a leading '-' still
// find their lock. Every old ID decodes to its slot except those starting
// with '_' with bit 14 clear (1 in 128), which decode to the slot 256
// below and have theirs as their legacy slot; lockIDInSlot accepts every
// old ID for its own slot.
func TestLockIDOldFormat(t *testing.T) {
	t.Parallel()
	// Fixed IDs, decoded by hand: the first ID here is the one CI's
	// command line took for a flag.
	for _, tt := range []struct {
		id         string
		slot       uint16
		legacy     uint16
		wantLegacy bool
	}{
		{"AAAAAAAAAAAAAAAAAAAAAA", 0, 0, false},
		{"-IVksgpdPRfBXGV1hxGNJg", 62<<8 | 8<<2 | 21>>4, 0, false}, // '-' 62, 'I' 8, 'V' 21
		{"-_____________________", 62<<8 | 63<<2 | 3, 0, false},
		{"_AAAAAAAAAAAAAAAAAAAAA", 62 << 8, 63 << 8, true},         // bit 14 clear: slot>>8 62, or 63 if old
		{"_AIAAAAAAAAAAAAAAAAAAA", 63 << 8, 0, false},              // 'I' 8 = 0b001000: bit 14 set
		{"__3_________________8A", 62<<8 | 63<<2 | 3, 16383, true}, // '3' 55 = 0b110111: bit 14 clear
		{"______________________", numSlots - 1, 0, false},
	} {
		ls, ok := lockIDLegacySlot(tt.id)
		got := [3]any{lockIDSlot(tt.id), ls, ok}
		if want := [3]any{tt.slot, tt.legacy, tt.wantLegacy}; got != want {
			t.Errorf("%s: slot, legacy slot = %v; want %v", tt.id, got, want)
		}
	}

	tests := []struct {
		name   string
		from   uint16 // slots from..from+255
		bit14  byte
		first  byte
		offset uint16 // lockIDSlot(id) = slot - offset
	}{
		{"slot>>8 0", 0, 0, 'A', 0},
		{"slot>>8 61", 61 << 8, 1, '9', 0},
		{"slot>>8 62, bit 14 clear", 62 << 8, 0, '-', 0},
		{"slot>>8 62, bit 14 set", 62 << 8, 1, '-', 0},
		{"slot>>8 63, bit 14 set", 63 << 8, 1, '_', 0},
		{"slot>>8 63, bit 14 clear", 63 << 8, 0, '_', 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for slot := tt.from; slot < tt.from+256; slot++ {
				id := oldLockIDBit14(slot, tt.bit14)
				if id[0] != tt.first || !driver.ValidLockID(id) {
					t.Fatalf("oldLockID(%d) = %q; want a valid ID starting with %q", slot, id, tt.first)
				}
				ls, ok := lockIDLegacySlot(id)
				got := [3]any{lockIDSlot(id), ls, ok}
				want := [3]any{slot - tt.offset, uint16(0), false}
				if tt.offset != 0 {
					want = [3]any{slot - tt.offset, slot, true}
				}
				if got != want {
					t.Fatalf("old ID %q of slot %d: slot, legacy slot = %v; want %v", id, slot, got, want)
				}
				if !lockIDInSlot(id, slot) {
					t.Fatalf("lockIDInSlot(%q, %d) = false for an old ID of that slot", id, slot)
				}
			}
		})
	}

	// Over the whole old ID space (every slot, both values of bit 14),
	// exactly 1 in 128 decodes to another slot, and always to the one
	// 256 below with its own slot as the legacy one.
	moved := 0
	for slot := uint16(0); slot < numSlots; slot++ {
		for bit14 := range byte(2) {
			id := oldLockIDBit14(slot, bit14)
			if lockIDSlot(id) != slot {
				moved++
				if ls, ok := lockIDLegacySlot(id); !ok || ls != slot || lockIDSlot(id) != slot-256 {
					t.Fatalf("old ID %q of slot %d decodes to %d, legacy %d, %v", id, slot, lockIDSlot(id), ls, ok)
				}
			}
		}
	}
	if moved != 2*numSlots/128 {
		t.Errorf("%d of %d old IDs decode to another slot; want %d (1 in 128)", moved, 2*numSlots, 2*numSlots/128)
	}
}

// keyWithSlotHigh returns a key, from tag, whose slot>>8 is hi.
func keyWithSlotHigh(t *testing.T, d *Driver, tag string, hi uint16) string {
	t.Helper()
	for i := range 100000 {
		key := fmt.Sprintf("%s:%d", tag, i)
		kn, err := d.names(key)
		if err != nil {
			t.Fatal(err)
		}
		if keySlot(kn.body)>>8 == hi {
			return key
		}
	}
	t.Fatalf("no key %s:N with slot>>8 %d", tag, hi)
	return ""
}

// acquireAs acquires key for ttl under lockID as Acquire does with the ID
// it mints (its script, keys and arguments): how a driver before this one
// took a lock under an ID of its own format.
func acquireAs(ctx context.Context, d *Driver, key, lockID string, ttl time.Duration) (driver.AcquireResult, error) {
	k, ttlMs, err := driver.ValidateKeyTTL(key, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	body, err := driver.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	an := d.acquireNames(body, lockID)
	ts := d.ttlArgs(ttlMs)
	vals, err := d.exec(ctx, d.s.acquire, []string{an.lock, an.index}, []string{lockID, ts.s, k, ts.px}).ToArray()
	if err != nil {
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	return d.acquired(ctx, vals, k, lockID, "acquire")
}

// TestLockIDHighSlots: locks of keys in slots 15872..16383, whose IDs
// start with '_' now, and locks taken under IDs of the old format (an old
// process's, in a rolling upgrade) are found by lock ID alone and by key:
// LookupByID, Extend and Release with key "" and with the key.
func TestLockIDHighSlots(t *testing.T) {
	forModes(t, func(t *testing.T, d *Driver) {
		ctx := context.Background()
		k62 := keyWithSlotHigh(t, d, "hs62", 62)
		k63 := keyWithSlotHigh(t, d, "hs63", 63)
		kn62, _ := d.names(k62)
		kn63, _ := d.names(k63)
		s62, s63 := keySlot(kn62.body), keySlot(kn63.body)
		tests := []struct {
			name  string
			key   string
			id    func() string // "" mints (Acquire)
			first byte
			slot  uint16 // lockIDSlot of the ID
		}{
			{"new, slot>>8 62", k62, nil, '_', s62},
			{"new, slot>>8 63", k63, nil, '_', s63},
			{"old '-', slot>>8 62", k62, func() string { return oldLockIDBit14(s62, 0) }, '-', s62},
			{"old '_' bit 14 set, slot>>8 63", k63, func() string { return oldLockIDBit14(s63, 1) }, '_', s63},
			{"old '_' bit 14 clear, slot>>8 63", k63, func() string { return oldLockIDBit14(s63, 0) }, '_', s63 - 256},
		}
		for _, tt := range tests {
			for _, keyed := range []bool{false, true} {
				name := tt.name + ", by ID"
				if keyed {
					name = tt.name + ", by key"
				}
				t.Run(name, func(t *testing.T) {
					acquire := func() string {
						t.Helper()
						var r driver.AcquireResult
						var err error
						if tt.id == nil {
							r, err = d.Acquire(ctx, tt.key, time.Minute)
						} else {
							r, err = acquireAs(ctx, d, tt.key, tt.id(), time.Minute)
						}
						if err != nil || !r.Acquired {
							t.Fatalf("acquire %s = %+v, %v", tt.key, r, err)
						}
						if r.LockID[0] != tt.first || lockIDSlot(r.LockID) != tt.slot {
							t.Fatalf("lock ID %q: slot %d; want first character %q, slot %d", r.LockID, lockIDSlot(r.LockID), tt.first, tt.slot)
						}
						return r.LockID
					}
					id := acquire()
					key := ""
					if keyed {
						key = tt.key
					}
					info, err := d.LookupByID(ctx, id)
					if err != nil || info == nil || info.Key != tt.key || info.LockID != id {
						t.Fatalf("LookupByID(%q) = %+v, %v; want the lock of %s", id, info, err, tt.key)
					}
					// A wrong key does not reach the lock.
					if r, err := d.Release(ctx, tt.key+":other", id); err != nil || r.OK {
						t.Fatalf("Release(other key, %q) = %+v, %v; want not-found", id, r, err)
					}
					if r, err := d.Extend(ctx, key, id, time.Minute); err != nil || !r.OK {
						t.Fatalf("Extend(%q, %q) = %+v, %v", key, id, r, err)
					}
					if r, err := d.Release(ctx, key, id); err != nil || !r.OK {
						t.Fatalf("Release(%q, %q) = %+v, %v", key, id, r, err)
					}
					if locked, err := d.IsLocked(ctx, tt.key); err != nil || locked {
						t.Fatalf("IsLocked(%s) = %v, %v after the release", tt.key, locked, err)
					}
					got := []any{}
					r, err := d.Release(ctx, key, id)
					got = append(got, r, err)
					e, err := d.Extend(ctx, key, id, time.Minute)
					got = append(got, e, err)
					info, err = d.LookupByID(ctx, id)
					got = append(got, info, err)
					want := []any{driver.ReleaseResult{Detail: driver.DetailNotFound}, nil,
						driver.ExtendResult{Detail: driver.DetailNotFound}, nil, (*driver.LockInfo)(nil), nil}
					if diff := cmp.Diff(want, got); diff != "" {
						t.Errorf("after the release (-want +got):\n%s", diff)
					}
				})
			}
		}
	})
}

// TestLockIDLegacyRoundTrips: a keyless operation on an ID with a legacy
// slot looks there only when it found nothing at the slot the ID carries
// (a second round trip); found, or for any other ID, it is one.
func TestLockIDLegacyRoundTrips(t *testing.T) {
	t.Parallel()
	cc := &countingClient{Client: singleClient(t), cmds: map[string]int{}}
	d := newDriver(t, cc)
	ctx := context.Background()
	k62 := keyWithSlotHigh(t, d, "rt62", 62)
	k63 := keyWithSlotHigh(t, d, "rt63", 63)
	kn63, _ := d.names(k63)
	// Load the scripts (a NOSCRIPT reply and an EVAL the first time).
	if _, err := d.LookupByID(ctx, newLockID(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Release(ctx, "", newLockID(0)); err != nil {
		t.Fatal(err)
	}
	r62, err := d.Acquire(ctx, k62, time.Minute)
	if err != nil || !r62.Acquired {
		t.Fatalf("Acquire = %+v, %v", r62, err)
	}
	old := oldLockIDBit14(keySlot(kn63.body), 0)
	r63, err := acquireAs(ctx, d, k63, old, time.Minute)
	if err != nil || !r63.Acquired {
		t.Fatalf("acquireAs = %+v, %v", r63, err)
	}
	cc.take()
	tests := []struct {
		name string
		op   func() error
		want int // EVALSHA commands
	}{
		{"LookupByID new '_' ID, found", func() error { _, err := d.LookupByID(ctx, r62.LockID); return err }, 1},
		{"LookupByID old ambiguous ID, found at its legacy slot", func() error { _, err := d.LookupByID(ctx, old); return err }, 2},
		{"LookupByID '_' bit 14 clear, not found", func() error { _, err := d.LookupByID(ctx, newLockID(62<<8)); return err }, 2},
		{"LookupByID '_' bit 14 set, not found", func() error { _, err := d.LookupByID(ctx, newLockID(63<<8)); return err }, 1},
		{"LookupByID other ID, not found", func() error { _, err := d.LookupByID(ctx, newLockID(5)); return err }, 1},
		{"Release new '_' ID", func() error { _, err := d.Release(ctx, "", r62.LockID); return err }, 1},
		{"Release old ambiguous ID", func() error { _, err := d.Release(ctx, "", old); return err }, 2},
		{"Release '_' bit 14 clear, not found", func() error { _, err := d.Release(ctx, "", newLockID(62<<8)); return err }, 2},
		{"Release with the key, '_' bit 14 clear, not found", func() error { _, err := d.Release(ctx, k63, old); return err }, 1},
		{"Extend other ID, not found", func() error { _, err := d.Extend(ctx, "", newLockID(5), time.Minute); return err }, 1},
	}
	for _, tt := range tests {
		if err := tt.op(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(map[string]int{"EVALSHA": tt.want}, cc.take()); diff != "" {
			t.Errorf("%s: commands (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestLegacyRetryBound: the second request of a keyless operation keeps
// the operation's call bound: with none of it left, it fails with
// NetworkTimeout at once, sending nothing.
func TestLegacyRetryBound(t *testing.T) {
	t.Parallel()
	cc := &countingClient{Client: singleClient(t), cmds: map[string]int{}}
	d := newDriver(t, cc, WithCallTimeout(time.Second))
	id := newLockID(62 << 8)
	lr := d.legacyRetry("", id)
	if !lr.ok {
		t.Fatalf("legacyRetry(%q): none", id)
	}
	if none := d.legacyRetry("k", id); none.ok {
		t.Fatalf("legacyRetry with a key: %+v", none)
	}
	lr.start = time.Now().Add(-time.Second)
	_, err := lr.exec(context.Background(), d, d.s.lookupID, id).ToString()
	if driver.CodeOf(err) != driver.NetworkTimeout {
		t.Errorf("exec past the bound: %v; want NetworkTimeout", err)
	}
	if got := cc.take(); len(got) != 0 {
		t.Errorf("exec past the bound sent %v", got)
	}
}
