package firestore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
)

// lockDoc is a decoded lock document.
type lockDoc struct {
	lockID       string
	expiresAtMs  int64
	acquiredAtMs int64
	key          string
	fence        driver.Fence
}

func decodeLock(s *firestore.DocumentSnapshot) (lockDoc, bool) {
	if s == nil || !s.Exists() {
		return lockDoc{}, false
	}
	m := s.Data()
	id, ok1 := m["lockId"].(string)
	exp, ok2 := m["expiresAtMs"].(int64)
	acq, _ := m["acquiredAtMs"].(int64)
	key, _ := m["key"].(string)
	fs, _ := m["fence"].(string)
	f, err := driver.ParseFence(fs)
	if !ok1 || !ok2 || err != nil {
		return lockDoc{}, false
	}
	return lockDoc{lockID: id, expiresAtMs: exp, acquiredAtMs: acq, key: key, fence: f}, true
}

func (l lockDoc) info() *driver.LockInfo {
	return &driver.LockInfo{
		Key:          l.key,
		LockID:       l.lockID,
		Fence:        l.fence,
		ExpiresAtMs:  l.expiresAtMs,
		AcquiredAtMs: l.acquiredAtMs,
	}
}

func (d *Driver) nowMs() int64 { return d.now().UnixMilli() }

func (d *Driver) txOpts() firestore.TransactionOption { return firestore.MaxAttempts(d.maxAttempts) }

// fenceRefs returns the fence counter of the lock document base (ID fid)
// and, for a key whose document ID changed with the domain separation of
// hashed IDs, the counter of its former ID, which floors the new one.
func (d *Driver) fenceRefs(k, base, fid string) []*firestore.DocumentRef {
	refs := []*firestore.DocumentRef{d.fences.Doc(fid)}
	// Only hashed IDs moved: a literal ID is what the former rule gave.
	if !strings.HasPrefix(base, hashMark) {
		return refs
	}
	if old, err := legacyDocID(k); err == nil && old != base {
		if oldFid, err := legacyDocID("fence:" + old); err == nil {
			refs = append(refs, d.fences.Doc(oldFid))
		}
	}
	return refs
}

// Acquire takes key for ttl if no live lock holds it: one transaction
// reads the lock document and the key's fence counter, then (reads before
// writes) writes the next fence and the lock. The time authority is this
// process's clock, read inside the transaction after its reads. Contention
// is the result {Acquired: false, Reason: "locked"} and writes nothing; a
// fence past [driver.FenceMax] fails with Internal and writes nothing.
//
// When the call fails after its commit may have been sent (its context
// ended, the connection broke), Acquire releases the lock ID it minted in
// the background, on a detached context bounded by 5 s, and checks once
// more after 200 ms for a commit applied late; [Driver.Close] waits for
// it. So an acquisition whose result the caller never saw does not block
// the key until its TTL.
func (d *Driver) Acquire(ctx context.Context, key string, ttl time.Duration) (driver.AcquireResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, ttlMs, err := driver.ValidateKeyTTL(key, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	base, err := docID(k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	fid, err := fenceID(base)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	refs := d.fenceRefs(k, base, fid)
	if err := driver.CheckContext(ctx); err != nil {
		return driver.AcquireResult{}, err
	}
	lockID := driver.NewLockID()
	lockRef, fenceRef := d.locks.Doc(base), refs[0]
	unlock, err := d.stripes.lock(ctx, lockRef.Path)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	defer unlock()
	var (
		res  driver.AcquireResult
		warn bool
	)
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		res, warn = driver.AcquireResult{}, false
		if err := ctx.Err(); err != nil {
			return err
		}
		snaps, err := tx.GetAll(append([]*firestore.DocumentRef{lockRef}, refs...))
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		nowT := d.now()
		now := nowT.UnixMilli()
		if l, ok := decodeLock(snaps[0]); ok && driver.IsLive(l.expiresAtMs, now) {
			res.Reason = driver.ReasonLocked
			return nil
		}
		// The counter, or where there is none yet the counter of the
		// key's document ID before the domain separation (fenceRefs).
		var last int64
		for _, snap := range snaps[1:] {
			if !snap.Exists() {
				continue
			}
			fs, _ := snap.Data()["fence"].(string)
			f, err := driver.ParseFence(fs)
			if err != nil {
				return driver.NewError(driver.Internal, "firestore: corrupt fence counter document")
			}
			last = int64(f)
			break
		}
		nowUs := nowT.UnixMicro()
		fence, w, err := driver.CheckNewFence(max(last+1, int64(driver.FenceFloor(nowUs))))
		if err != nil {
			return err
		}
		exp := now + ttlMs
		// expireAt: when the floor will have passed the fence by the margin;
		// Sweep (or a Firestore TTL policy on the field) deletes the counter
		// after it.
		keepUntil := time.UnixMilli(now + driver.FenceKeepMs(fence, nowUs))
		if err := tx.Set(fenceRef, map[string]any{"fence": fence.String(), "keyDebug": driver.HashKey(k), "expireAt": keepUntil}); err != nil {
			return err
		}
		if err := tx.Set(lockRef, map[string]any{
			"lockId": lockID, "expiresAtMs": exp, "acquiredAtMs": now, "key": k, "fence": fence.String(),
		}); err != nil {
			return err
		}
		res = driver.AcquireResult{Acquired: true, LockID: lockID, Fence: fence, ExpiresAtMs: exp}
		warn = w
		return nil
	})
	if err != nil {
		if res.Acquired { // the last attempt's commit was sent, or about to be
			d.bg.Add(1)
			go d.releaseUnknown(func(ctx context.Context) (bool, error) {
				r, err := d.Release(ctx, "", lockID)
				return r.OK, err
			})
		}
		return driver.AcquireResult{}, mapError(ctx, err, k, "")
	}
	if warn {
		driver.WarnFence(ctx, d.log(), "firestore", k, res.Fence)
	}
	return res, nil
}

// Bounds of the best-effort release of an acquisition whose outcome is
// unknown (docs/contract.md#contexts-and-unknown-outcomes).
const (
	unknownOutcomeRelease = 5 * time.Second        // per release attempt
	unknownOutcomeRecheck = 200 * time.Millisecond // before the second attempt
)

// releaseUnknown runs release (of a lock or permit ID whose acquisition
// failed after its commit may have been sent) on a detached context. If
// the ID is not there (the commit failed, or has not been applied yet) it
// tries once more after unknownOutcomeRecheck, unless the driver is
// closing. Errors are ignored: the ID either never existed or expires with
// its TTL.
func (d *Driver) releaseUnknown(release func(context.Context) (ok bool, err error)) {
	defer d.bg.Done()
	for i := range 2 {
		if i > 0 {
			t := time.NewTimer(unknownOutcomeRecheck)
			select {
			case <-t.C:
			case <-d.bgCtx.Done():
				t.Stop()
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), unknownOutcomeRelease)
		ok, err := release(ctx)
		cancel()
		if err == nil && ok {
			return
		}
	}
}

// errDuplicateLive reports two live lock documents with one lock ID.
var errDuplicateLive = errors.New("firestore: more than one live lock document carries this lock ID")

// candidates runs the lockId query outside any transaction and returns the
// references of the documents that carry lockID. A query inside a
// transaction would lock the whole result range of the collection
// pessimistically and serialise every release and extend with every
// acquisition; the references are re-read and their lockId re-checked
// inside the transaction instead. (Only Acquire creates a document with a
// given lock ID, and it returned before the caller could release it, so a
// strongly consistent query finds it.)
func (d *Driver) candidates(ctx context.Context, lockID string) ([]*firestore.DocumentRef, error) {
	docs, err := d.locks.Where("lockId", "==", lockID).Documents(ctx).GetAll()
	if err != nil {
		return nil, err
	}
	refs := make([]*firestore.DocumentRef, len(docs))
	for i, s := range docs {
		refs[i] = s.Ref
	}
	return refs, nil
}

// resolve reads the candidate documents of lockID inside tx. Duplicates
// are logged; expired duplicates are deleted; two live ones fail. It
// returns the single live document (nil if none) and whether an expired
// document of lockID was found.
func (d *Driver) resolve(ctx context.Context, tx *firestore.Transaction, lockID string, refs []*firestore.DocumentRef) (live *firestore.DocumentSnapshot, expired bool, err error) {
	if len(refs) == 0 {
		return nil, false, nil
	}
	docs, err := tx.GetAll(refs)
	if err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	now := d.nowMs()
	var lives []*firestore.DocumentSnapshot
	var stale []*firestore.DocumentSnapshot
	for _, s := range docs {
		l, ok := decodeLock(s)
		if !ok || l.lockID != lockID { // gone or taken over since the query
			continue
		}
		if driver.IsLive(l.expiresAtMs, now) {
			lives = append(lives, s)
		} else {
			stale = append(stale, s)
		}
	}
	if len(lives)+len(stale) > 1 {
		d.log().LogAttrs(ctx, slog.LevelWarn, "syncguard: duplicate lock documents for one lock ID",
			slog.String("backend", "firestore"),
			slog.String("lockIdHash", driver.HashKey(lockID)),
			slog.Int("documents", len(lives)+len(stale)), slog.Int("live", len(lives)))
		if len(lives) > 1 {
			return nil, false, errDuplicateLive
		}
		for _, s := range stale { // prune expired duplicates (writes follow all reads)
			if err := tx.Delete(s.Ref); err != nil {
				return nil, false, err
			}
		}
	}
	if len(lives) == 1 {
		return lives[0], len(stale) > 0, nil
	}
	return nil, len(stale) > 0, nil
}

// mutateByID is the body of Release and Extend: it finds the documents
// carrying lockID (the query, outside any transaction), takes the local
// stripe of the first, and runs one transaction that resolves them and
// calls apply on the single live document. detail is "" when apply ran,
// else "expired" or "not-found".
func (d *Driver) mutateByID(ctx context.Context, lockID string, apply func(tx *firestore.Transaction, live *firestore.DocumentSnapshot) error) (detail string, err error) {
	refs, err := d.candidates(ctx, lockID)
	if err != nil {
		return "", mapError(ctx, err, "", lockID)
	}
	if len(refs) > 0 {
		unlock, err := d.stripes.lock(ctx, refs[0].Path)
		if err != nil {
			return "", err
		}
		defer unlock()
	}
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		live, expired, err := d.resolve(ctx, tx, lockID, refs)
		switch {
		case err != nil:
			return err
		case live != nil:
			detail = ""
			return apply(tx, live)
		case expired:
			detail = driver.DetailExpired
		default:
			detail = driver.DetailNotFound
		}
		return nil
	})
	if err != nil {
		return "", mapError(ctx, err, "", lockID)
	}
	return detail, nil
}

// Release deletes the live lock lockID. Of concurrent or repeated releases
// exactly one reports OK; Detail tells "expired" from "not-found".
func (d *Driver) Release(ctx context.Context, _, lockID string) (driver.ReleaseResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	if err := driver.CheckID(ctx, lockID); err != nil {
		return driver.ReleaseResult{}, err
	}
	detail, err := d.mutateByID(ctx, lockID, func(tx *firestore.Transaction, live *firestore.DocumentSnapshot) error {
		return tx.Delete(live.Ref)
	})
	return released(detail, err)
}

// Extend sets the expiry of the live lock lockID to now + ttl (client
// clock), updating only expiresAtMs. It never recreates an absent or
// expired lock.
func (d *Driver) Extend(ctx context.Context, _, lockID string, ttl time.Duration) (driver.ExtendResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	ttlMs, err := driver.CheckIDTTL(ctx, lockID, ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	var exp int64
	detail, err := d.mutateByID(ctx, lockID, func(tx *firestore.Transaction, live *firestore.DocumentSnapshot) error {
		exp = d.nowMs() + ttlMs
		return tx.Update(live.Ref, []firestore.Update{{Path: "expiresAtMs", Value: exp}})
	})
	return extended(detail, exp, err)
}

// released is the result of a release whose transaction found detail
// ("" when it deleted the lock or permit) or failed with err.
func released(detail string, err error) (driver.ReleaseResult, error) {
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	return driver.ReleaseResult{OK: detail == "", Detail: detail}, nil
}

// extended is the result of an extension whose transaction found detail
// ("" when it set the expiry to exp) or failed with err.
func extended(detail string, exp int64, err error) (driver.ExtendResult, error) {
	if err != nil {
		return driver.ExtendResult{}, err
	}
	if detail != "" {
		return driver.ExtendResult{Detail: detail}, nil
	}
	return driver.ExtendResult{OK: true, ExpiresAtMs: exp}, nil
}

// getDoc reads a document; a missing one is (nil, nil).
func getDoc(ctx context.Context, ref *firestore.DocumentRef) (*firestore.DocumentSnapshot, error) {
	s, err := ref.Get(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return s, nil
}

// IsLocked reports whether a live lock holds key (one document read).
func (d *Driver) IsLocked(ctx context.Context, key string) (bool, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := driver.CheckKeyAs(ctx, key, docID)
	if err != nil {
		return false, err
	}
	ref := d.locks.Doc(base)
	s, err := getDoc(ctx, ref)
	if err != nil {
		return false, mapError(ctx, err, k, "")
	}
	l, ok := decodeLock(s)
	if !ok {
		return false, nil
	}
	now := d.nowMs()
	if driver.IsLive(l.expiresAtMs, now) {
		return true, nil
	}
	if d.cleanup && now-l.expiresAtMs > driver.CleanupGuardMs {
		d.cleanupLater(ref)
	}
	return false, nil
}

// cleanupLater deletes ref in a background transaction that re-checks the
// cleanup guard; errors are swallowed.
func (d *Driver) cleanupLater(ref *firestore.DocumentRef) {
	d.bg.Add(1)
	go func() {
		defer d.bg.Done()
		ctx, cancel := context.WithTimeout(d.bgCtx, 10*time.Second)
		defer cancel()
		_ = d.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			s, err := tx.Get(ref)
			if err != nil {
				if isNotFound(err) {
					return nil
				}
				return err
			}
			l, ok := decodeLock(s)
			if !ok || d.nowMs()-l.expiresAtMs <= driver.CleanupGuardMs {
				return nil
			}
			return tx.Delete(ref)
		}, d.txOpts())
	}()
}

// LookupByKey returns the live lock of key, or nil.
func (d *Driver) LookupByKey(ctx context.Context, key string) (*driver.LockInfo, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := driver.CheckKeyAs(ctx, key, docID)
	if err != nil {
		return nil, err
	}
	s, err := getDoc(ctx, d.locks.Doc(base))
	if err != nil {
		return nil, mapError(ctx, err, k, "")
	}
	l, ok := decodeLock(s)
	if !ok || !driver.IsLive(l.expiresAtMs, d.nowMs()) {
		return nil, nil
	}
	return l.info(), nil
}

// LookupByID returns the live lock lockID, or nil. It
// runs the lockId query (one indexed read) and re-checks the ID.
func (d *Driver) LookupByID(ctx context.Context, lockID string) (*driver.LockInfo, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	if err := driver.CheckID(ctx, lockID); err != nil {
		return nil, err
	}
	docs, err := d.locks.Where("lockId", "==", lockID).Documents(ctx).GetAll()
	if err != nil {
		return nil, mapError(ctx, err, "", lockID)
	}
	if len(docs) > 1 {
		d.log().LogAttrs(ctx, slog.LevelWarn, "syncguard: duplicate lock documents for one lock ID",
			slog.String("backend", "firestore"),
			slog.String("lockIdHash", driver.HashKey(lockID)),
			slog.Int("documents", len(docs)))
	}
	now := d.nowMs()
	for _, s := range docs {
		if l, ok := decodeLock(s); ok && l.lockID == lockID && driver.IsLive(l.expiresAtMs, now) {
			return l.info(), nil
		}
	}
	return nil, nil
}
