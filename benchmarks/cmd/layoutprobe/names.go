package main

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
)

// The key names of SyncGuard's Redis driver (drivers/redis/layout.go),
// reproduced so that the scripts see keys and arguments of the real
// lengths: <prefix>:{<tag>}:lock:<body> and so on, the tag being the
// shortest [0-9A-Za-z] string of the body's slot, the lock ID carrying the
// slot in its first 14 bits.

const numSlots = 16384

var slotTags = sync.OnceValue(func() *[numSlots]string {
	var t [numSlots]string
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	left := numSlots
	var buf [4]byte
	for n := 1; n <= 4 && left > 0; n++ {
		var idx [4]int
		for {
			for i := 0; i < n; i++ {
				buf[i] = alphabet[idx[i]]
			}
			s := crc16(string(buf[:n])) & (numSlots - 1)
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

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16tab[byte(crc>>8)^s[i]]
	}
	return crc
}

var crc16tab = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

func mintLockID(slot uint16) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] = byte(slot >> 6)
	b[1] = byte(slot<<2) | b[1]&0x03
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// pair holds the names and values of one acquire+release pair on a fresh key.
type pair struct {
	key, sp, lock, index, queue, fence, lockID string
	raw, rl, rlVal                             string // raw-rueidis key; rueidislock key and value
}

const prefix = "syncguard"

func newPair(ns string, i int) *pair {
	k := ns + ":" + strconv.Itoa(i)
	slot := crc16(k) & (numSlots - 1)
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(":{")
	b.WriteString(slotTags()[slot])
	b.WriteString("}:")
	sp := b.String()
	id := mintLockID(slot)
	var v [24]byte
	_, _ = rand.Read(v[:])
	return &pair{
		key: k, sp: sp, lock: sp + "lock:" + k, index: sp + "id:" + id, queue: sp + "q:" + k,
		fence: sp + "fence:" + k, lockID: id,
		raw: "raw:" + k, rl: "rueidislock:0:" + k, rlVal: string(v[:]),
	}
}
