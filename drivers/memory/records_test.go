package memory

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard/driver"
)

// TestRecords runs a sequence of record operations on one name; every step
// sees the state left by the previous ones.
func TestRecords(t *testing.T) {
	d, clk := newTest(t)
	const name = "record:a"
	type step struct {
		name    string
		advance time.Duration
		op      string // put, get, del
		fence   driver.Fence
		value   string
		ttl     time.Duration
		wantPut driver.PutResult
		wantGet *driver.Record // for get
		wantDel bool
	}
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	steps := []step{
		{name: "absent", op: "get"},
		{name: "first put", op: "put", fence: 5, value: "v5", wantPut: driver.PutResult{Stored: true, Fence: 5}},
		{name: "read", op: "get", wantGet: &driver.Record{Value: []byte("v5"), Fence: 5}},
		{name: "stale put", op: "put", fence: 4, value: "v4", wantPut: driver.PutResult{Fence: 5}},
		{name: "unchanged", op: "get", wantGet: &driver.Record{Value: []byte("v5"), Fence: 5}},
		{name: "same fence", op: "put", fence: 5, value: "v5b", wantPut: driver.PutResult{Stored: true, Fence: 5}},
		{name: "newer fence", op: "put", fence: 7, value: "v7", ttl: time.Second, wantPut: driver.PutResult{Stored: true, Fence: 7}},
		{name: "with ttl", op: "get", wantGet: &driver.Record{Value: []byte("v7"), Fence: 7, ExpiresAtMs: ms(time.Second)}},
		{name: "before expiry", advance: 999 * time.Millisecond, op: "get", wantGet: &driver.Record{Value: []byte("v7"), Fence: 7, ExpiresAtMs: ms(time.Second)}},
		{name: "expired", advance: time.Millisecond, op: "get"},
		{name: "older fence after expiry", op: "put", fence: 1, value: "v1", wantPut: driver.PutResult{Stored: true, Fence: 1}},
		{name: "no ttl", op: "get", wantGet: &driver.Record{Value: []byte("v1"), Fence: 1}},
		{name: "never expires", advance: 1000 * time.Hour, op: "get", wantGet: &driver.Record{Value: []byte("v1"), Fence: 1}},
		{name: "ttl again", op: "put", fence: 3, value: "v3", ttl: time.Minute, wantPut: driver.PutResult{Stored: true, Fence: 3}},
		{name: "ttl removed", op: "put", fence: 3, value: "v3", wantPut: driver.PutResult{Stored: true, Fence: 3}},
		{name: "still there", advance: time.Hour, op: "get", wantGet: &driver.Record{Value: []byte("v3"), Fence: 3}},
		{name: "delete stale", op: "del", fence: 2, wantDel: false},
		{name: "kept", op: "get", wantGet: &driver.Record{Value: []byte("v3"), Fence: 3}},
		{name: "delete", op: "del", fence: 3, wantDel: true},
		{name: "deleted", op: "get"},
		{name: "delete absent", op: "del", fence: 9, wantDel: false},
		{name: "empty value", op: "put", fence: 1, value: "", ttl: time.Second, wantPut: driver.PutResult{Stored: true, Fence: 1}},
		{name: "expired delete", advance: time.Second, op: "del", fence: 9, wantDel: false},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		switch s.op {
		case "put":
			got, err := d.PutRecord(bg, name, s.fence, []byte(s.value), s.ttl)
			if diff := cmp.Diff(s.wantPut, got); err != nil || diff != "" {
				t.Fatalf("%s: PutRecord: %v (-want +got):\n%s", s.name, err, diff)
			}
		case "get":
			got, err := d.GetRecord(bg, name)
			if diff := cmp.Diff(s.wantGet, got); err != nil || diff != "" {
				t.Fatalf("%s: GetRecord: %v (-want +got):\n%s", s.name, err, diff)
			}
		case "del":
			got, err := d.DeleteRecord(bg, name, s.fence)
			if err != nil || got != s.wantDel {
				t.Fatalf("%s: DeleteRecord = %v, %v; want %v", s.name, got, err, s.wantDel)
			}
		}
	}
}

func TestRecordTTLFromPutTime(t *testing.T) {
	d, clk := newTest(t)
	clk.Advance(1234 * time.Millisecond)
	if _, err := d.PutRecord(bg, "r", 1, []byte("x"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	rec, _ := d.GetRecord(bg, "r")
	if rec == nil || rec.ExpiresAtMs != clk.Ms()+2000 {
		t.Fatalf("record = %+v, want expiry %d", rec, clk.Ms()+2000)
	}
}

func TestRecordValueIsCopied(t *testing.T) {
	d, _ := newTest(t)
	in := []byte("original")
	if _, err := d.PutRecord(bg, "copy", 1, in, 0); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X'
	got, _ := d.GetRecord(bg, "copy")
	got.Value[1] = 'Y'
	again, _ := d.GetRecord(bg, "copy")
	if string(again.Value) != "original" {
		t.Fatalf("stored value was aliased: %q", again.Value)
	}
	// nil stays nil, empty stays empty.
	d.PutRecord(bg, "nil", 1, nil, 0)
	d.PutRecord(bg, "empty", 1, []byte{}, 0)
	n, _ := d.GetRecord(bg, "nil")
	e, _ := d.GetRecord(bg, "empty")
	if n.Value != nil || e.Value == nil || len(e.Value) != 0 {
		t.Fatalf("nil -> %#v, empty -> %#v", n.Value, e.Value)
	}
}

// TestRecordNamespace: records and locks with the same name are unrelated.
func TestRecordNamespace(t *testing.T) {
	d, _ := newTest(t)
	r := mustAcquire(t, d, "shared", time.Minute)
	if rec, _ := d.GetRecord(bg, "shared"); rec != nil {
		t.Fatalf("lock visible as record: %+v", rec)
	}
	if _, err := d.PutRecord(bg, "shared", 100, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.DeleteRecord(bg, "shared", 100); !ok {
		t.Fatal("record not deleted")
	}
	if !isLocked(t, d, "shared") {
		t.Fatal("record operations touched the lock")
	}
	if rel, _ := d.Release(bg, "", r.LockID); !rel.OK {
		t.Fatal("release failed")
	}
	// Names are normalised like keys.
	d.PutRecord(bg, "cafe\u0301", 1, []byte("v"), 0)
	if rec, _ := d.GetRecord(bg, "caf\u00e9"); rec == nil {
		t.Fatal("normalised record name not found")
	}
}
