package election

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/syncguard/syncguard"
)

func TestHistoryRoundTrip(t *testing.T) {
	var h []Leader
	for i := 1; i <= 20; i++ {
		h = appendTerm(h, Leader{Term: syncguard.Fence(i * 3), Value: []byte{byte(i)}})
	}
	if len(h) != historyLen || h[0].Term != 15 {
		t.Fatalf("history keeps %d terms from %v; want %d from 15", len(h), h[0].Term, historyLen)
	}
	got, err := decodeHistory(encodeHistory(h))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// A rewrite by the same leader replaces its term.
	h = appendTerm(h, Leader{Term: 60, Value: []byte("again")})
	if n := len(h); n != historyLen || string(h[n-1].Value) != "again" || h[n-2].Term != 57 {
		t.Errorf("rewrite of the last term: %+v", h[len(h)-2:])
	}
}

// FuzzDecodeHistory: any stored bytes decode to a well-formed history or
// an error, never a panic, and a decoded history re-encodes to itself.
func FuzzDecodeHistory(f *testing.F) {
	f.Add(encodeHistory([]Leader{{Term: 1, Value: []byte("a")}, {Term: 7}}))
	f.Add([]byte{historyVersion, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHistory(b)
		if err != nil {
			return
		}
		if len(h) > historyLen {
			t.Fatalf("%d terms", len(h))
		}
		for i := 1; i < len(h); i++ {
			if h[i].Term <= h[i-1].Term {
				t.Fatalf("terms out of order: %v", h)
			}
		}
		again, err := decodeHistory(encodeHistory(h))
		if err != nil || !cmp.Equal(h, again, cmpopts.EquateEmpty()) {
			t.Fatalf("re-encoding: %v, %v", again, err)
		}
	})
}
