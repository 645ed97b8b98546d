package firestore

import (
	"cmp"
	"context"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/syncguard/syncguard/driver"
)

// Compile-time check: the driver keeps permits.
var _ driver.PermitStore = (*Driver)(nil)

// permitDoc is a decoded permit document: the key's permit fence counter
// and its permits in fence order. One document of the permit collection
// (default "syncguard_permits") per key, with the key's document ID
// ([docID]), holds
//
//	fence     int64: the counter, the last fence handed out for a permit
//	permits   map: permit ID → {exp, fence, limit, acq} (int64 each)
//	keyDebug  HashKey(key), never the key
//	expireAt  timestamp: when the document may be deleted (see expireAt)
type permitDoc struct {
	fence   int64
	holders []permitEntry // in fence order
}

type permitEntry struct {
	id                     string
	exp, fence, limit, acq int64
}

func errCorruptPermits() error {
	return driver.NewError(driver.Internal, "firestore: corrupt permit document")
}

// decodePermits decodes a permit document; a missing one is the empty
// state, a malformed one Internal.
func decodePermits(s *firestore.DocumentSnapshot) (permitDoc, error) {
	if s == nil || !s.Exists() {
		return permitDoc{}, nil
	}
	m := s.Data()
	f, ok := m["fence"].(int64)
	if !ok || f < 0 {
		return permitDoc{}, errCorruptPermits()
	}
	pd := permitDoc{fence: f}
	raw, _ := m["permits"].(map[string]any)
	for id, v := range raw {
		pm, ok := v.(map[string]any)
		if !ok {
			return permitDoc{}, errCorruptPermits()
		}
		e := permitEntry{id: id}
		for _, fld := range []struct {
			name string
			dst  *int64
		}{{"exp", &e.exp}, {"fence", &e.fence}, {"limit", &e.limit}, {"acq", &e.acq}} {
			n, ok := pm[fld.name].(int64)
			if !ok {
				return permitDoc{}, errCorruptPermits()
			}
			*fld.dst = n
		}
		pd.holders = append(pd.holders, e)
	}
	slices.SortFunc(pd.holders, func(a, b permitEntry) int { return cmp.Compare(a.fence, b.fence) })
	return pd, nil
}

// prune drops the permits that are no longer live at nowMs and reports
// whether it dropped any.
func (pd *permitDoc) prune(nowMs int64) bool {
	n := len(pd.holders)
	pd.holders = slices.DeleteFunc(pd.holders, func(e permitEntry) bool { return !driver.IsLive(e.exp, nowMs) })
	return len(pd.holders) != n
}

// counterMayGo reports whether the fence floor at nowUs has passed the
// counter by [driver.FenceMarginMs] (the rule of Sweep for fence
// counters): a document recreated afterwards continues above every fence
// the counter handed out.
func (pd *permitDoc) counterMayGo(nowUs int64) bool {
	return int64(driver.FenceFloor(nowUs))-driver.FenceMarginMs*driver.FencePerMs > pd.fence
}

// expireAt is the moment after which the document may be deleted by Sweep
// or a Firestore TTL policy: every permit more than
// [driver.CleanupGuardMs] past its expiry and the counter past
// [driver.FenceKeepMs].
func (pd *permitDoc) expireAt(nowMs, nowUs int64) time.Time {
	at := nowMs + driver.FenceKeepMs(driver.Fence(pd.fence), nowUs)
	for _, e := range pd.holders {
		at = max(at, e.exp+driver.CleanupGuardMs)
	}
	return time.UnixMilli(at)
}

// write stores pd in tx: it deletes the document when it holds no permit
// and its counter may go, and otherwise sets it whole.
func (pd *permitDoc) write(tx *firestore.Transaction, ref *firestore.DocumentRef, k string, nowT time.Time) error {
	nowMs, nowUs := nowT.UnixMilli(), nowT.UnixMicro()
	if len(pd.holders) == 0 && pd.counterMayGo(nowUs) {
		return tx.Delete(ref)
	}
	permits := make(map[string]any, len(pd.holders))
	for _, e := range pd.holders {
		permits[e.id] = map[string]any{"exp": e.exp, "fence": e.fence, "limit": e.limit, "acq": e.acq}
	}
	return tx.Set(ref, map[string]any{
		"fence":    pd.fence,
		"permits":  permits,
		"keyDebug": driver.HashKey(k),
		"expireAt": pd.expireAt(nowMs, nowUs),
	})
}

// permitRef returns the normalised key and its permit document, checking
// the key and the context.
func (d *Driver) permitRef(ctx context.Context, key string) (string, *firestore.DocumentRef, error) {
	k, id, err := driver.CheckKeyAs(ctx, key, docID)
	if err != nil {
		return "", nil, err
	}
	return k, d.permits.Doc(id), nil
}

// readPermits reads the permit document ref inside tx.
func readPermits(ctx context.Context, tx *firestore.Transaction, ref *firestore.DocumentRef) (permitDoc, error) {
	s, err := tx.Get(ref)
	if err != nil && !isNotFound(err) {
		return permitDoc{}, err
	}
	if err := ctx.Err(); err != nil {
		return permitDoc{}, err
	}
	return decodePermits(s)
}

// AcquirePermit takes one permit of key for ttl if the live permits of key
// number fewer than limit and fewer than the smallest limit they were
// acquired with, in one transaction on the key's permit document (reads
// before writes; the client clock read after the read). The permit gets
// the fence max(counter+1, [driver.FenceFloor](now)), kept as the key's
// permit counter, apart from the lock fence counter. Expired permits are
// pruned in the same write. A full semaphore is {Acquired: false, Reason:
// "locked"} and writes nothing.
//
// As for [Driver.Acquire], a call that fails after its commit may have
// been sent releases the permit ID it minted in the background.
func (d *Driver) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, ttlMs, err := driver.CheckPermitKeyTTL(ctx, key, limit, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	id, err := docID(k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	ref := d.permits.Doc(id)
	unlock, err := d.stripes.lock(ctx, ref.Path)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	defer unlock()
	permitID := driver.NewLockID()
	var (
		res  driver.AcquireResult
		warn bool
	)
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		res, warn = driver.AcquireResult{}, false
		pd, err := readPermits(ctx, tx, ref)
		if err != nil {
			return err
		}
		nowT := d.now()
		nowMs, nowUs := nowT.UnixMilli(), nowT.UnixMicro()
		pd.prune(nowMs)
		lim := int64(limit)
		for _, e := range pd.holders {
			lim = min(lim, e.limit)
		}
		if int64(len(pd.holders)) >= lim {
			res.Reason = driver.ReasonLocked
			return nil
		}
		fence, w, err := driver.CheckNewFence(max(pd.fence+1, int64(driver.FenceFloor(nowUs))))
		if err != nil {
			return err
		}
		exp := nowMs + ttlMs
		pd.fence = int64(fence)
		// The permit keeps its caller's limit, not the smaller one in
		// force now (docs/contract.md#permits).
		pd.holders = append(pd.holders, permitEntry{id: permitID, exp: exp, fence: int64(fence), limit: int64(limit), acq: nowMs})
		if err := pd.write(tx, ref, k, nowT); err != nil {
			return err
		}
		res = driver.AcquireResult{Acquired: true, LockID: permitID, Fence: fence, ExpiresAtMs: exp}
		warn = w
		return nil
	})
	if err != nil {
		if res.Acquired { // the last attempt's commit was sent, or about to be
			d.bg.Add(1)
			go d.releaseUnknown(func(ctx context.Context) (bool, error) {
				r, err := d.ReleasePermit(ctx, k, permitID)
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

// mutatePermit is the body of ReleasePermit and ExtendPermit: one
// transaction that reads the key's permit document, calls apply on the
// index of the live permit permitID, prunes expired permits and writes the
// document back if anything changed. detail is "" when apply ran, else
// "expired" or "not-found".
func (d *Driver) mutatePermit(ctx context.Context, key, permitID string, apply func(pd *permitDoc, i int, nowMs int64)) (detail string, err error) {
	if err := driver.ValidateLockID(permitID); err != nil {
		return "", err
	}
	k, ref, err := d.permitRef(ctx, key)
	if err != nil {
		return "", err
	}
	unlock, err := d.stripes.lock(ctx, ref.Path)
	if err != nil {
		return "", err
	}
	defer unlock()
	err = d.runTx(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		detail = ""
		pd, err := readPermits(ctx, tx, ref)
		if err != nil {
			return err
		}
		nowT := d.now()
		nowMs := nowT.UnixMilli()
		i := slices.IndexFunc(pd.holders, func(e permitEntry) bool { return e.id == permitID })
		switch {
		case i < 0:
			detail = driver.DetailNotFound
		case !driver.IsLive(pd.holders[i].exp, nowMs):
			detail = driver.DetailExpired
		default:
			apply(&pd, i, nowMs)
		}
		if pruned := pd.prune(nowMs); detail != "" && !pruned {
			return nil // nothing changed: no write
		}
		return pd.write(tx, ref, k, nowT)
	})
	if err != nil {
		return "", mapError(ctx, err, k, permitID)
	}
	return detail, nil
}

// ReleasePermit deletes the live permit permitID of key, in one
// transaction on the key's permit document that also prunes expired
// permits and deletes the document when it holds no permit and its counter
// may go. Of concurrent or repeated releases exactly one reports OK;
// Detail tells "expired" from "not-found".
func (d *Driver) ReleasePermit(ctx context.Context, key, permitID string) (driver.ReleaseResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	detail, err := d.mutatePermit(ctx, key, permitID, func(pd *permitDoc, i int, _ int64) {
		pd.holders = slices.Delete(pd.holders, i, i+1)
	})
	return released(detail, err)
}

// ExtendPermit sets the expiry of the live permit permitID of key to now +
// ttl (client clock, read in the transaction after its read), pruning
// expired permits in the same write. It never recreates an absent or
// expired permit.
func (d *Driver) ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (driver.ExtendResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	var exp int64
	detail, err := d.mutatePermit(ctx, key, permitID, func(pd *permitDoc, i int, nowMs int64) {
		exp = nowMs + ttlMs
		pd.holders[i].exp = exp
	})
	return extended(detail, exp, err)
}

// Permits returns the live permits of key in fence order (one document
// read, judged by the client clock after it). Diagnostic only.
func (d *Driver) Permits(ctx context.Context, key string) ([]driver.LockInfo, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, ref, err := d.permitRef(ctx, key)
	if err != nil {
		return nil, err
	}
	s, err := getDoc(ctx, ref)
	if err != nil {
		return nil, mapError(ctx, err, k, "")
	}
	pd, err := decodePermits(s)
	if err != nil {
		return nil, mapError(ctx, err, k, "")
	}
	pd.prune(d.nowMs())
	var out []driver.LockInfo
	for _, e := range pd.holders {
		out = append(out, driver.LockInfo{Key: k, LockID: e.id, Fence: driver.Fence(e.fence), ExpiresAtMs: e.exp, AcquiredAtMs: e.acq})
	}
	return out, nil
}
