package driver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MaxKeyBytes is the largest key accepted, in UTF-8 bytes after NFC
// normalisation.
const MaxKeyBytes = 512

// Messages of key validation errors (kept from upstream SyncGuard).
const (
	msgEmptyKey   = "key must not be empty"
	msgKeyTooLong = "key exceeds maximum length of 512 bytes"
	msgBadUTF8    = "key must be valid UTF-8"
	msgPrefixLong = "prefix exceeds backend limit"
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
	// string by more than a factor of 4 (the worst case is 3.5×, e.g.
	// U+1FBE U+0308 U+0301 → U+0390).
	if len(key) > 4*MaxKeyBytes {
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
// output: logs, telemetry, [LockInfo] and the CLI. It is the first 12 bytes
// of SHA-256, so it gives away nothing of a random lock ID and cannot be
// inverted or collided by construction; a short or guessable key can still
// be confirmed by hashing candidates, so treat a key hash as a correlation
// aid, not as a secret.
func HashKey(s string) string {
	if !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
