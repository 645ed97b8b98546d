package firestore

import (
	"strings"

	"github.com/syncguard/syncguard"
)

// storageLimit is Firestore's document ID budget (contract §1: 1500 B).
const storageLimit = 1500

// docID returns the document ID of a normalised key (or record name):
// StorageKey with Firestore's budget, and — the contract's FIX — the hashed
// form also for short IDs that Firestore would misread: containing '/'
// (a sub-collection path), "." or "..", or of the reserved form __x__.
func docID(k string) (string, error) {
	id, err := syncguard.StorageKey("", k, storageLimit, 0)
	if err != nil {
		return "", err
	}
	if unsafeID(id) {
		id = syncguard.HashedKey(id)
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
