package firestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/internal/churn"
	"github.com/syncguard/syncguard/internal/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUnsafeDocumentIDs: keys that Firestore would misread as paths or
// reserved IDs work end to end, because their document IDs are hashed.
func TestUnsafeDocumentIDs(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	ctx := context.Background()
	for _, key := range []string{"a/b/c", "/", ".", "..", "__reserved__", "__x__", "user/42/profile"} {
		id, err := docID(key)
		if err != nil {
			t.Fatal(err)
		}
		if unsafeID(id) {
			t.Errorf("docID(%q) = %q is still unsafe", key, id)
		}
		r, err := d.Acquire(ctx, key, time.Minute)
		if err != nil || !r.Acquired {
			t.Fatalf("Acquire(%q) = %+v, %v", key, r, err)
		}
		if locked, err := d.IsLocked(ctx, key); err != nil || !locked {
			t.Errorf("IsLocked(%q) = %v, %v", key, locked, err)
		}
		info, err := d.LookupByID(ctx, r.LockID)
		if err != nil || info == nil || info.Key != key {
			t.Errorf("LookupByID(%q) = %+v, %v", key, info, err)
		}
		if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
			t.Errorf("Release(%q) = %+v, %v; want OK (upstream lands a/b/c in a sub-collection and reports not-found)", key, rr, err)
		}
	}
	// Ordinary keys keep readable IDs.
	if id, _ := docID("resource:123"); id != "resource:123" {
		t.Errorf("docID(resource:123) = %q", id)
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	tests := []struct {
		name string
		opts []Option
		ok   bool
	}{
		{"defaults", nil, true},
		{"custom", []Option{WithCollections("l", "f")}, true},
		{"empty keeps default", []Option{WithCollections("", "")}, true},
		{"same", []Option{WithCollections("x", "x")}, false},
		{"slash", []Option{WithCollections("a/b", "f")}, false},
		{"dot", []Option{WithCollections(".", "f")}, false},
		{"reserved", []Option{WithCollections("__x__", "f")}, false},
		{"record clashes", []Option{WithRecordCollection(DefaultCollection)}, false},
		{"attempts", []Option{WithMaxAttempts(0)}, false},
	}
	for _, tt := range tests {
		d, err := New(c, tt.opts...)
		if tt.ok != (err == nil) {
			t.Errorf("%s: err = %v; want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && driver.CodeOf(err) != driver.InvalidArgument {
			t.Errorf("%s: code %v; want InvalidArgument", tt.name, driver.CodeOf(err))
		}
		if d != nil {
			d.Close()
		}
	}
	if _, err := New(nil); driver.CodeOf(err) != driver.InvalidArgument {
		t.Errorf("New(nil): %v", err)
	}
}

// TestDuplicateDocuments: two documents carrying one lock ID (possible only
// through outside writes). An expired duplicate is pruned and the live one
// is released; two live ones make Release fail rather than guess.
func TestDuplicateDocuments(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	ctx := context.Background()
	id := driver.NewLockID()
	now := time.Now().UnixMilli()
	write := func(doc string, exp int64) {
		t.Helper()
		if _, err := d.locks.Doc(doc).Set(ctx, map[string]any{
			"lockId": id, "expiresAtMs": exp, "acquiredAtMs": now, "key": doc, "fence": "000000000000001",
		}); err != nil {
			t.Fatal(err)
		}
	}
	write("dup-live", now+60_000)
	write("dup-expired", now-60_000)
	info, err := d.LookupByID(ctx, id)
	if err != nil || info == nil || driver.HashKey(info.Key) != driver.HashKey("dup-live") {
		t.Fatalf("LookupByID = %+v, %v; want the live duplicate", info, err)
	}
	if r, err := d.Release(ctx, "", id); err != nil || !r.OK {
		t.Fatalf("Release with an expired duplicate = %+v, %v; want OK on the live one", r, err)
	}
	for _, doc := range []string{"dup-live", "dup-expired"} {
		if s, _ := getDoc(ctx, d.locks.Doc(doc)); s != nil {
			t.Errorf("document %s still exists", doc)
		}
	}
	write("dup-a", now+60_000)
	write("dup-b", now+60_000)
	_, err = d.Release(ctx, "", id)
	if driver.CodeOf(err) != driver.Internal || !errors.Is(err, errDuplicateLive) {
		t.Errorf("Release with two live duplicates = %v; want Internal (duplicate live documents)", err)
	}
	if _, err := d.Extend(ctx, "", id, time.Minute); !errors.Is(err, errDuplicateLive) {
		t.Errorf("Extend with two live duplicates = %v; want the duplicate error", err)
	}
}

// TestCancelInsideTransaction: a context that ends while the transaction
// runs ends it at once, without SDK retries, with the context's code.
func TestCancelInsideTransaction(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	// Hold the key's stripe so the next Acquire waits inside the driver;
	// its deadline then ends it.
	ref := d.locks.Doc("stuck")
	unlock, err := d.stripes.lock(context.Background(), ref.Path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = d.Acquire(ctx, "stuck", time.Minute)
	unlock()
	if driver.CodeOf(err) != driver.NetworkTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire past its deadline = %v; want NetworkTimeout wrapping DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 400*time.Millisecond {
		t.Errorf("took %v", took)
	}
	// Cancellation observed inside the callback: the callback returns the
	// context error, which the SDK does not retry.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := d.Release(cctx, "", driver.NewLockID()); driver.CodeOf(err) != driver.Aborted {
		t.Errorf("Release(cancelled) = %v; want Aborted", err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	tests := []struct {
		err  error
		code driver.Code
	}{
		{status.Error(codes.PermissionDenied, "x"), driver.AuthFailed},
		{status.Error(codes.Unauthenticated, "x"), driver.AuthFailed},
		{status.Error(codes.DeadlineExceeded, "x"), driver.NetworkTimeout},
		{status.Error(codes.Unavailable, "x"), driver.ServiceUnavailable},
		{status.Error(codes.Internal, "x"), driver.ServiceUnavailable},
		{status.Error(codes.Aborted, "Transaction lock timeout."), driver.ServiceUnavailable},
		{status.Error(codes.InvalidArgument, "x"), driver.InvalidArgument},
		{status.Error(codes.FailedPrecondition, "index"), driver.InvalidArgument},
		{status.Error(codes.ResourceExhausted, "x"), driver.RateLimited},
		{status.Error(codes.Canceled, "x"), driver.Aborted},
		{status.Error(codes.Unknown, "x"), driver.Internal},
		{context.Canceled, driver.Aborted},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), driver.NetworkTimeout},
		{errors.New("other"), driver.Internal},
	}
	for _, tt := range tests {
		got := mapError(bg, tt.err, "k", "")
		if driver.CodeOf(got) != tt.code {
			t.Errorf("mapError(%v) = %v; want %v", tt.err, driver.CodeOf(got), tt.code)
		}
		if !errors.Is(got, tt.err) {
			t.Errorf("mapError(%v) does not wrap it", tt.err)
		}
	}
}

func TestCheckIndex(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	if err := d.CheckIndex(context.Background()); err != nil {
		t.Errorf("CheckIndex on the emulator = %v", err)
	}
}

// TestWatchRelease: a watcher is woken when the key is released, and a
// watch of a free key signals at once.
func TestWatchRelease(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	ctx := context.Background()
	r, err := d.Acquire(ctx, "w", time.Minute)
	if err != nil || !r.Acquired {
		t.Fatalf("Acquire = %+v, %v", r, err)
	}
	ch, stop, err := d.WatchRelease(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.NoSignal(t, ch, 200*time.Millisecond, "watch of the held key")
	if _, err := d.Release(ctx, "", r.LockID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitSignal(t, ch, 3*time.Second, "watch of the released key")
	free := testkit.WatchRelease(t, d, "free")
	select {
	case <-free:
	default:
		t.Error("a watch of a free key holds no signal")
	}
	stop()
	stop() // idempotent
}

// TestExclusionUnderContention: goroutines of one process contend on one
// key through Guard; the overlap detector sees no overlap.
func TestExclusionUnderContention(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	g := syncguard.New(d)
	var mu sync.Mutex
	inside, overlaps, entries := 0, 0, 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 3 {
				err := g.Do(context.Background(), "excl", func(context.Context, *syncguard.Lease[Capabilities]) error {
					mu.Lock()
					inside++
					entries++
					if inside > 1 {
						overlaps++
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					mu.Lock()
					inside--
					mu.Unlock()
					return nil
				}, syncguard.Timeout(30*time.Second), syncguard.MaxRetries(1000), syncguard.RetryDelay(20*time.Millisecond))
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if diff := cmp.Diff(struct{ Entries, Overlaps int }{12, 0}, struct{ Entries, Overlaps int }{entries, overlaps}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// BenchmarkPair measures an acquire+release pair against the emulator and
// reports p50/p99 latency.
func BenchmarkPair(b *testing.B) {
	d := newDriver(b, newClient(b))
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := d.Acquire(ctx, "bench", time.Minute)
		if err != nil || !r.Acquired {
			b.Fatalf("Acquire = %+v, %v", r, err)
		}
		if rr, err := d.Release(ctx, "", r.LockID); err != nil || !rr.OK {
			b.Fatalf("Release = %+v, %v", rr, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func FuzzDocID(f *testing.F) {
	for _, s := range []string{"a", "a/b", ".", "..", "__x__", "__", strings.Repeat("x", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, err := driver.NormalizeKey(key)
		if err != nil {
			return
		}
		id, err := docID(k)
		if err != nil {
			t.Fatalf("docID(%q): %v", k, err)
		}
		if unsafeID(id) || len(id) > storageLimit || id == "" {
			t.Fatalf("docID(%q) = %q is not a safe document ID", k, id)
		}
	})
}

// TestHashedIDsDoNotAlias is security finding 4: the literal key that
// equals the hashed document ID of another key ("tenant/42") named the same
// lock, fence, record and rate documents. With the "#" mark on hashed IDs,
// each key has its own documents.
func TestHashedIDsDoNotAlias(t *testing.T) {
	t.Parallel()
	d := newDriver(t, newClient(t))
	ctx := context.Background()
	victim := "tenant/42-" + driver.NewLockID()
	for _, attacker := range []string{driver.HashedKey(victim), "#" + driver.HashedKey(victim)} {
		vid, _ := docID(victim)
		aid, _ := docID(attacker)
		if vid == aid {
			t.Fatalf("docID(%q) = docID(%q) = %q", victim, attacker, vid)
		}
	}
	attacker := driver.HashedKey(victim)
	v, err := d.Acquire(ctx, victim, time.Minute)
	if err != nil || !v.Acquired {
		t.Fatalf("Acquire(victim) = %+v, %v", v, err)
	}
	a, err := d.Acquire(ctx, attacker, time.Minute)
	if err != nil || !a.Acquired {
		t.Errorf("Acquire(attacker) = %+v, %v; want its own lock", a, err)
	}
	if _, err := d.PutRecord(ctx, victim, v.Fence, []byte("victim's result"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if rec, err := d.GetRecord(ctx, attacker); err != nil || rec != nil {
		t.Errorf("GetRecord(attacker) = %+v, %v; want none", rec, err)
	}
	lim := driver.RateLimit{Limit: 1, Period: time.Hour, Burst: 1}
	if r, err := d.AllowN(ctx, victim, lim, 1); err != nil || r.Allowed != 1 {
		t.Fatalf("AllowN(victim) = %+v, %v", r, err)
	}
	if r, err := d.AllowN(ctx, attacker, lim, 1); err != nil || r.Allowed != 1 {
		t.Errorf("AllowN(attacker) = %+v, %v; want its own bucket", r, err)
	}
}

// TestFenceFloorAcrossIDChange: a key whose document ID gained the "#"
// mark continues from the counter kept under its former ID, so fences do
// not go back across the upgrade.
func TestFenceFloorAcrossIDChange(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	key := "tenant/7/" + driver.NewLockID()
	old, err := legacyDocID(key)
	if err != nil {
		t.Fatal(err)
	}
	oldFid, _ := legacyDocID("fence:" + old)
	// The former counter runs an hour ahead of the time floor, so that
	// continuing from it is visible.
	ahead := driver.FenceFloor(time.Now().Add(time.Hour).UnixMicro())
	if _, err := d.fences.Doc(oldFid).Set(ctx, map[string]any{"fence": ahead.String(), "keyDebug": key}); err != nil {
		t.Fatal(err)
	}
	for want := ahead + 1; want <= ahead+2; want++ {
		r, err := d.Acquire(ctx, key, time.Minute)
		if err != nil || !r.Acquired || r.Fence != want {
			t.Fatalf("Acquire = %+v, %v; want fence %v", r, err, want)
		}
		if _, err := d.Release(ctx, "", r.LockID); err != nil {
			t.Fatal(err)
		}
	}
	base, _ := docID(key)
	fid, _ := fenceID(base)
	snap, err := d.fences.Doc(fid).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Data()["keyDebug"]; got != driver.HashKey(key) {
		t.Errorf("keyDebug = %q; want HashKey of the key, never the key", got)
	}
}

// TestStorageFollowsLiveLocks: distinct keys locked and released leave a
// fence counter each until the floor has passed them by FenceMarginMs;
// then Sweep returns the fence collection to its baseline (a release
// deletes the lock document). The emulator is slow, so this locks 2,000
// keys (SYNCGUARD_FIRESTORE_STORAGE_KEYS overrides).
func TestStorageFollowsLiveLocks(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	d := newDriver(t, c)
	ctx := context.Background()
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("SYNCGUARD_FIRESTORE_STORAGE_KEYS")); err == nil && v > 0 {
		n = v
	}
	count := func(col *firestore.CollectionRef) int {
		t.Helper()
		snaps, err := col.Documents(ctx).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		return len(snaps)
	}
	baseF, baseL := count(d.fences), count(d.locks)
	took, err := churn.Run(ctx, d, "payment:", n, 16)
	if err != nil {
		t.Fatal(err)
	}
	rightF, rightL := count(d.fences), count(d.locks)
	if rightF != baseF+n {
		t.Errorf("right after: %d fence counters; want %d", rightF, baseF+n)
	}
	time.Sleep(time.Until(time.Now().Add(time.Duration(driver.FenceMarginMs)*time.Millisecond + 200*time.Millisecond)))
	swept, err := d.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	afterF, afterL := count(d.fences), count(d.locks)
	t.Logf("%d keys locked and released in %v: fence documents %d → %d → %d (Sweep deleted %d), lock documents %d → %d → %d",
		n, took.Round(time.Millisecond), baseF, rightF, afterF, swept, baseL, rightL, afterL)
	if afterF != baseF || afterL != baseL {
		t.Errorf("after the margin and a Sweep: %d fence and %d lock documents; want the baseline %d and %d", afterF, afterL, baseF, baseL)
	}
}
