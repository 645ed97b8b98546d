package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"

	"github.com/syncguard/syncguard/driver"
)

// Key layout
//
// Every key of one user key lives in one Redis Cluster hash slot. The slot
// is chosen from the key (CRC16 of its storage body, as Redis does) and
// written into the key names as a hash tag:
//
//	<prefix>:{<tag>}:lock:<body>    lock and fence counter (hash, see scripts.go)
//	<prefix>:{<tag>}:id:<lockID>    lockID index → lock key (PX ttl+tolerance)
//	<prefix>:{<tag>}:rel:<body>     release channel (SPUBLISH), not a key
//	<prefix>:{<tag>}:rec:<body>     fenced record
//	<prefix>:{<tag>}:rate:<body>    GCRA state
//	<prefix>:{<tag>}:q:<body>       waiter queue (sorted set, see watch.go)
//	<prefix>:{<tag>}:sem:<body>     permits, their summary and fence counter (hash, see permits.go)
//	<prefix>:{<tag>}:semrel:<body>  permit release channel (SPUBLISH), not a key
//
// <tag> is the shortest string of [0-9A-Za-z] whose CRC16 is that slot, so
// the tag is a function of the slot. A lock ID carries the slot of its lock
// in its first 14 bits (the other bits come from crypto/rand; see
// mintLockID for the IDs of slots 15872..16383), so Release, Extend and
// LookupByID find the index key, and through it the lock in the same slot,
// from the lock ID alone. The "fence:" segment of earlier
// releases (a counter key of its own) is no longer written; prefixes still
// may not contain it.
//
// The type segment (lock:, fence:, id:, …) sits between the tag and the
// user-controlled body, so no user key can name an index or fence key: the
// namespaces are disjoint by construction, not by a blocklist.

// numSlots is the number of Redis Cluster hash slots.
const numSlots = 16384

// storageLimit is the byte budget of a full key name (docs/contract.md#numbers: Redis
// 1000 B); layoutOverhead is the longest fixed part around the prefix and
// body: ":{" + 4-char tag + "}:" + "fence:".
const (
	storageLimit   = 1000
	layoutOverhead = 2 + 4 + 2 + len("fence:")
)

// slotTags maps every slot to its hash tag. It is computed once on first
// use and never modified.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var t [numSlots]string
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	left := numSlots
	var buf [4]byte
	// Breadth-first over lengths 1..4, so each slot gets its shortest tag.
	for n := 1; n <= 4 && left > 0; n++ {
		var idx [4]int
		for {
			for i := 0; i < n; i++ {
				buf[i] = alphabet[idx[i]]
			}
			s := crc16(buf[:n]) & (numSlots - 1)
			if t[s] == "" {
				t[s] = string(buf[:n])
				left--
			}
			i := n - 1
			for ; i >= 0; i-- {
				idx[i]++
				if idx[i] < len(alphabet) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}
	return &t
})

// keySlot returns the slot of a storage body.
func keySlot(body string) uint16 {
	return crc16s(body) & (numSlots - 1)
}

// slotPrefix returns "<prefix>:{<tag>}:" (or "{<tag>}:" without a prefix).
func (d *Driver) slotPrefix(slot uint16) string {
	tag := slotTags()[slot]
	var b strings.Builder
	b.Grow(d.slotPrefixLen(tag))
	d.writeSlotPrefix(&b, tag)
	return b.String()
}

// keyNames is the set of storage names of one user key.
type keyNames struct {
	body string // storage body of the normalised key
	sp   string // slot prefix
}

func (k keyNames) lock() string   { return k.sp + "lock:" + k.body }
func (k keyNames) rec() string    { return k.sp + "rec:" + k.body }
func (k keyNames) rate() string   { return k.sp + "rate:" + k.body }
func (k keyNames) rel() string    { return k.sp + "rel:" + k.body }
func (k keyNames) queue() string  { return k.sp + "q:" + k.body }
func (k keyNames) sem() string    { return k.sp + "sem:" + k.body }
func (k keyNames) semRel() string { return k.sp + "semrel:" + k.body }

// keyFor is the prologue of an operation on one key: it normalises key,
// derives its storage names and then checks ctx (so that bad input is
// reported as such even with an ended context).
func (d *Driver) keyFor(ctx context.Context, key string) (string, keyNames, error) {
	return driver.CheckKeyAs(ctx, key, d.names)
}

// checkedNames derives the storage names of the normalised key k and then
// checks the context: the order in which every operation of this driver
// checks its arguments (a key it cannot store fails before a dead context).
func (d *Driver) checkedNames(ctx context.Context, k string) (keyNames, error) {
	kn, err := d.names(k)
	if err != nil {
		return keyNames{}, err
	}
	return kn, driver.CheckContext(ctx)
}

// names derives the storage names of the normalised key k.
func (d *Driver) names(k string) (keyNames, error) {
	body, err := driver.StorageKey("", k, d.bodyLimit, 0)
	if err != nil {
		return keyNames{}, err
	}
	return keyNames{body: body, sp: d.slotPrefix(keySlot(body))}, nil
}

// idKey returns the index key of lockID, in the slot the ID carries, and
// its slot prefix (one allocation for both).
func (d *Driver) idKey(lockID string) (key, sp string) {
	return d.idKeyAt(lockIDSlot(lockID), lockID)
}

// idKeyAt returns the index key of lockID in slot, and its slot prefix.
func (d *Driver) idKeyAt(slot uint16, lockID string) (key, sp string) {
	tag := slotTags()[slot]
	var b strings.Builder
	b.Grow(d.slotPrefixLen(tag) + len("id:") + len(lockID))
	d.writeSlotPrefix(&b, tag)
	n := b.Len()
	b.WriteString("id:")
	b.WriteString(lockID)
	key = b.String()
	return key, key[:n]
}

func (d *Driver) slotPrefixLen(tag string) int {
	n := len(tag) + 3 // "{" tag "}:"
	if d.prefix != "" {
		n += len(d.prefix) + 1
	}
	return n
}

func (d *Driver) writeSlotPrefix(b *strings.Builder, tag string) {
	if d.prefix != "" {
		b.WriteString(d.prefix)
		b.WriteByte(':')
	}
	b.WriteByte('{')
	b.WriteString(tag)
	b.WriteString("}:")
}

// acquireNames are the names an acquisition (or a keyed release or
// extension) uses, built in one allocation.
type acquireNames struct {
	sp, lock, index, queue, lockID string
}

// acquireNames derives the names of an acquisition of the storage body
// under lockID, minting a fresh lock ID (carrying the body's slot) when
// lockID is "".
func (d *Driver) acquireNames(body, lockID string) acquireNames {
	slot := keySlot(body)
	tag := slotTags()[slot]
	var id [driver.LockIDLen]byte
	if lockID == "" {
		mintLockID(&id, slot)
	} else {
		copy(id[:], lockID)
	}
	spl := d.slotPrefixLen(tag)
	var b strings.Builder
	b.Grow(4*spl + 2*len(body) + len("lock:id:q:") + len(id))
	d.writeSlotPrefix(&b, tag)
	i0 := b.Len()
	d.writeSlotPrefix(&b, tag)
	b.WriteString("lock:")
	b.WriteString(body)
	i2 := b.Len()
	d.writeSlotPrefix(&b, tag)
	b.WriteString("id:")
	b.Write(id[:])
	i3 := b.Len()
	d.writeSlotPrefix(&b, tag)
	b.WriteString("q:")
	b.WriteString(body)
	s := b.String()
	return acquireNames{
		sp: s[:i0], lock: s[i0:i2], index: s[i2:i3], queue: s[i3:],
		lockID: s[i3-len(id) : i3],
	}
}

// newLockID mints a lock ID carrying slot (see mintLockID). The format is
// the usual 22 base64url characters, so [driver.ValidLockID] holds.
func newLockID(slot uint16) string {
	var id [driver.LockIDLen]byte
	mintLockID(&id, slot)
	return string(id[:])
}

// Lock ID format
//
// A lock ID is the base64url encoding of 16 bytes: the slot in the first 14
// bits, crypto/rand in the other 114. Its first character is then slot>>8,
// which is '-' for slots 15872..16127 (slot>>8 == 62), and a command line
// takes an argument starting with '-' for a flag. So no ID starts with '-':
// for slots 15872..16383 (slot>>8 is 62 or 63) the first character is '_'
// (63) and bit 14 (counting from 0: the bit right after the slot, the 0x08
// bit of the third character's value) is slot bit 8, the one the first
// character lost: 0 for 15872..16127, 1 for 16128..16383. Those IDs keep
// 113 random bits, the others 114.
//
// The format before this one wrote slot>>8 as it is ('-' for 62, '_' for
// 63) and left bit 14 random. Its IDs starting with '-' still decode to
// their slot; half of those starting with '_' (bit 14 clear, 1 ID in 128)
// now decode to the slot 256 below theirs, which lockIDLegacySlot returns
// so that the keyless operations look there too, and the keyed ones accept
// either slot.

// idBit14 is bit 14 of a lock ID as a bit of its third base64 character.
const idBit14 = 0x08

// mintLockID writes a new lock ID carrying slot into id (see Lock ID
// format).
func mintLockID(id *[driver.LockIDLen]byte, slot uint16) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go ≥ 1.24)
	b[0] = byte(slot >> 6)
	b[1] = byte(slot<<2) | b[1]&0x03
	if slot>>9 == 31 { // slot>>8 is 62 or 63
		b[0] |= 0x04                           // first character '_'
		b[1] = b[1]&^0x02 | byte(slot>>7)&0x02 // bit 14: slot bit 8
	}
	base64.RawURLEncoding.Encode(id[:], b[:])
}

// lockIDSlot returns the slot carried by a (valid) lock ID: its first 14
// bits, except that a first character '_' stands for slot>>8 62 or 63 as
// bit 14 tells (see Lock ID format). Any valid ID maps to some slot, so a
// foreign ID simply resolves to nothing.
func lockIDSlot(id string) uint16 {
	c0, c1, c2 := b64val(id[0]), b64val(id[1]), b64val(id[2])
	if c0 == 63 {
		c0 = 62 | (c2&idBit14)>>3
	}
	return uint16(c0)<<8 | uint16(c1)<<2 | uint16(c2)>>4
}

// lockIDLegacySlot returns the slot that the lock ID format before this one
// gave a (valid) lock ID when that is not lockIDSlot(id): for an ID
// starting with '_' with bit 14 clear, lockIDSlot(id) + 256. Such an ID is
// of slot lockIDSlot(id) (15872..16127) if this driver minted it, and of
// the legacy slot (16128..16383) if a driver before it did. ok is false
// for every other ID.
func lockIDLegacySlot(id string) (slot uint16, ok bool) {
	if id[0] != '_' || b64val(id[2])&idBit14 != 0 {
		return 0, false
	}
	return lockIDSlot(id) + 256, true
}

// lockIDInSlot reports whether a (valid) lock ID can be of a lock in slot:
// the slot it carries, or its legacy slot.
func lockIDInSlot(id string, slot uint16) bool {
	if lockIDSlot(id) == slot {
		return true
	}
	ls, ok := lockIDLegacySlot(id)
	return ok && ls == slot
}

func b64val(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26
	case c >= '0' && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default: // '_'
		return 63
	}
}
