package election

import (
	"encoding/binary"
	"slices"

	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
)

// historyLen is how many terms the election record keeps, so that an
// observer that missed a few reads still sees every leader in order.
const historyLen = 16

// historyVersion is the first byte of an encoded history.
const historyVersion = 1

// appendTerm adds t to h, which is in term order, dropping the terms not
// older than t (a rewrite by the same leader) and the oldest beyond
// historyLen.
func appendTerm(h []Leader, t Leader) []Leader {
	h = slices.DeleteFunc(h, func(o Leader) bool { return o.Term >= t.Term })
	h = append(h, Leader{Term: t.Term, Value: slices.Clone(t.Value)})
	if len(h) > historyLen {
		h = h[len(h)-historyLen:]
	}
	return h
}

// encodeHistory is version, then per term uvarint term, uvarint length and
// the value.
func encodeHistory(h []Leader) []byte {
	b := []byte{historyVersion}
	for _, t := range h {
		b = binary.AppendUvarint(b, uint64(t.Term))
		b = binary.AppendUvarint(b, uint64(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// decodeHistory parses encodeHistory's output; anything else is Internal
// (a record this package did not write).
func decodeHistory(b []byte) ([]Leader, error) {
	if len(b) == 0 || b[0] != historyVersion {
		return nil, corrupt()
	}
	b = b[1:]
	var h []Leader
	for len(b) > 0 {
		term, n := binary.Uvarint(b)
		if n <= 0 || term == 0 {
			return nil, corrupt()
		}
		b = b[n:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > MaxValueBytes || size > uint64(len(b)-n) {
			return nil, corrupt()
		}
		b = b[n:]
		if len(h) > 0 && syncguard.Fence(term) <= h[len(h)-1].Term || len(h) == historyLen {
			return nil, corrupt()
		}
		h = append(h, Leader{Term: syncguard.Fence(term), Value: slices.Clone(b[:size])})
		b = b[size:]
	}
	return h, nil
}

func corrupt() error {
	return driver.NewError(driver.Internal, "election: the election record is not one this package wrote")
}
