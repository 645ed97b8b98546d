package driver

import (
	"crypto/rand"
	"encoding/base64"
)

// LockIDLen is the length of a lock ID: 16 random bytes in base64url without
// padding.
const LockIDLen = 22

const msgBadLockID = "invalid lockId format"

// NewLockID returns a fresh lock ID: 16 bytes from crypto/rand encoded as 22
// base64url characters, never starting with '-' (so that a command line
// does not take one for a flag). IDs are never reused and carry no time or
// counter.
func NewLockID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	// A first character '-' (the top six bits 62) becomes 'e' (30).
	if b[0]>>2 == 62 {
		b[0] ^= 0x80
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidLockID reports whether id has the lock ID format
// ^[A-Za-z0-9_-]{22}$.
func ValidLockID(id string) bool {
	if len(id) != LockIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !lockIDChar[id[i]] {
			return false
		}
	}
	return true
}

// lockIDChar marks the base64url alphabet; a table avoids mispredicted
// branches on random IDs (this check runs before every release/extend).
var lockIDChar = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'] = true, true
	return t
}()

// ValidateLockID returns an InvalidArgument error ("invalid lockId format")
// unless [ValidLockID] holds. Drivers call it before any I/O.
func ValidateLockID(id string) error {
	if !ValidLockID(id) {
		return &LockError{Code: InvalidArgument, Message: msgBadLockID, LockID: sanitizeForError(id)}
	}
	return nil
}

// sanitizeForError keeps an invalid ID out of error values when it is too
// long to be an ID (it may be arbitrary user input).
func sanitizeForError(id string) string {
	if len(id) > 64 {
		return ""
	}
	return id
}
