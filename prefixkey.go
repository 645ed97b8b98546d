package syncguard

import (
	"unicode/utf8"

	"github.com/syncguard/syncguard/driver"
	"golang.org/x/text/unicode/norm"
)

// hashedNameSep separates a primitive's prefix from the digest that stands
// for a key too long to be prefixed (see prefixedName).
const hashedNameSep = "#"

// maxPrefixBytes is the longest prefix of a primitive: one that leaves room
// for the hashed form of a key (separator and a 22-character digest).
const maxPrefixBytes = driver.MaxKeyBytes - len(hashedNameSep) - 22

// prefixedName returns the lock key or record name under which a primitive
// with prefix (OncePerKey, FencedWriter, RateLimiter) keeps key. Every key
// the key rule accepts has one, so a key that works with a Guard works with
// every primitive:
//
//   - prefix + key (NFC) when it fits [driver.MaxKeyBytes] — every name earlier
//     releases used;
//   - otherwise prefix + "#" + [driver.HashedKey] of prefix + key: the first 16
//     bytes of its SHA-256, as StorageKey hashes over-long storage keys.
//
// Like StorageKey's hashed keys, the hashed form shares the namespace with
// short keys: a key equal to "#" + the digest of another key addresses the
// same name. Finding one needs the other key (and then the key itself
// would do); by accident it is as unlikely as a 128-bit collision.
func prefixedName(prefix, key string) (string, error) {
	k, err := driver.NormalizeKey(key)
	if err != nil {
		return "", err
	}
	if prefix == "" {
		return k, nil
	}
	name := norm.NFC.String(prefix + k)
	if len(name) <= driver.MaxKeyBytes {
		return name, nil
	}
	return driver.NormalizeKey(prefix + hashedNameSep + driver.HashedKey(name))
}

// checkPrefix validates the prefix given to option: valid UTF-8 and short
// enough to leave room for every key (at most maxPrefixBytes after NFC).
func checkPrefix(option, prefix string) *LockError {
	if !utf8.ValidString(prefix) {
		return optionError(option, "the prefix must be valid UTF-8, got %q", prefix)
	}
	if n := len(norm.NFC.String(prefix)); n > maxPrefixBytes {
		return optionError(option, "the prefix must be at most %d bytes (to leave room for every key), got %d", maxPrefixBytes, n)
	}
	return nil
}
