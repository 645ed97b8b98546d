package syncguard

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxKeyBytes is the largest key accepted, in UTF-8 bytes after NFC
// normalisation.
const MaxKeyBytes = 512

// Messages of key validation errors (kept from upstream SyncGuard).
const (
	msgEmptyKey   = "Key must not be empty"
	msgKeyTooLong = "Key exceeds maximum length of 512 bytes"
	msgBadUTF8    = "Key must be valid UTF-8"
	msgPrefixLong = "Prefix exceeds backend limit"
)

// NormalizeKey validates key and returns its NFC form. Every key-taking
// operation uses only the normalised form, so "café" typed composed or
// decomposed addresses one lock. It fails with InvalidArgument for an empty
// key, invalid UTF-8, or more than [MaxKeyBytes] bytes after normalisation.
func NormalizeKey(key string) (string, error) {
	if key == "" {
		return "", invalidArg(msgEmptyKey)
	}
	if !utf8.ValidString(key) {
		return "", invalidArg(msgBadUTF8)
	}
	// Reject hopeless inputs before normalising them: NFC never shrinks a
	// string by more than a factor of 3.
	if len(key) > 3*MaxKeyBytes {
		return "", invalidArg(msgKeyTooLong)
	}
	n := norm.NFC.String(key)
	if len(n) > MaxKeyBytes {
		return "", invalidArg(msgKeyTooLong)
	}
	return n, nil
}

// StorageKey derives the backend storage key for key under prefix, so that
// prefix + ":" + key plus reserve bytes of backend overhead fit in limit
// bytes. Keys that would not fit are replaced by prefix + ":" + a 22-character
// base64url digest (the first 16 bytes of SHA-256 of the full candidate).
// Trailing colons of prefix are ignored. It fails with InvalidArgument for an
// empty key or a prefix that leaves no room.
//
// The algorithm is shared with the TypeScript SyncGuard library.
func StorageKey(prefix, key string, limit, reserve int) (string, error) {
	if key == "" {
		return "", invalidArg(msgEmptyKey)
	}
	key = norm.NFC.String(key)
	prefix = strings.TrimRight(prefix, ":")
	sep := 0
	if prefix != "" {
		sep = 1
	}
	if len(prefix)+sep+reserve > limit {
		return "", invalidArg(msgPrefixLong)
	}
	cand := key
	if prefix != "" {
		cand = prefix + ":" + key
	}
	if len(cand)+reserve <= limit {
		return cand, nil
	}
	h := HashedKey(cand)
	if prefix != "" {
		h = prefix + ":" + h
	}
	if len(h)+reserve > limit {
		return "", invalidArg(msgPrefixLong)
	}
	return h, nil
}

// HashedKey returns the 22-character base64url (no padding) digest that
// StorageKey substitutes for an over-long candidate: the first 16 bytes of
// SHA-256(s).
func HashedKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// HashKey returns a 24-hex-digit digest of s (after NFC) for sanitized
// output: logs, telemetry and [LockInfo]. It is a correlation aid, not a
// cryptographic hash: short keys can be recovered by brute force and
// collisions constructed. The algorithm is shared with the TypeScript
// SyncGuard library.
func HashKey(s string) string {
	var a, b, c uint32
	for _, u := range utf16.Encode([]rune(norm.NFC.String(s))) {
		w := uint32(u)
		a = a*31 + w
		b = b*127 + 3*w
		c = c*2047 + 7*w
	}
	return fmt.Sprintf("%08x%08x%08x", a, b, c)
}
