package firestore

import (
	"strings"

	"github.com/syncguard/syncguard/driver"
)

// storageLimit is Firestore's document ID budget (1500 B).
const storageLimit = 1500

// hashMark starts every hashed document ID. A key that itself starts with
// it is hashed too, so no key's literal ID can equal another key's hashed
// ID (domain separation; without it the key "z-7B6DzEwID-n4ru3DPotQ" named
// the documents of "tenant/42").
const hashMark = "#"

// docID returns the document ID of a normalised key (or record name): the
// key itself when Firestore can take it literally, otherwise "#" and the
// 22-character base64url SHA-256 digest ([driver.HashedKey]). Hashed
// are keys over the ID budget, keys Firestore would misread (containing
// '/', "." or "..", of the reserved form __x__) and keys starting with "#".
func docID(k string) (string, error) {
	if k == "" {
		return "", driver.NewError(driver.InvalidArgument, "key must not be empty")
	}
	if len(k) <= storageLimit && !unsafeID(k) && !strings.HasPrefix(k, hashMark) {
		return k, nil
	}
	return hashMark + driver.HashedKey(k), nil
}

// legacyDocID is the document ID releases before the domain separation
// used: the hashed form without the mark. Acquire floors a new fence
// counter with the counter kept there, so fences do not go back across
// the upgrade.
func legacyDocID(k string) (string, error) {
	id, err := driver.StorageKey("", k, storageLimit, 0)
	if err != nil {
		return "", err
	}
	if unsafeID(id) {
		id = driver.HashedKey(id)
	}
	return id, nil
}

// fenceID returns the fence-counter document ID of a lock document ID
// (derived from the base ID, so each lock document owns one counter).
func fenceID(base string) (string, error) {
	return docID("fence:" + base)
}

func unsafeID(id string) bool {
	return strings.Contains(id, "/") || id == "." || id == ".." || reservedID(id)
}

// reservedID reports the __x__ form Firestore reserves.
func reservedID(s string) bool {
	return len(s) >= 4 && strings.HasPrefix(s, "__") && strings.HasSuffix(s, "__")
}
