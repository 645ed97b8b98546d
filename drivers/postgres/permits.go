package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/syncguard/syncguard/driver"
)

var _ driver.PermitStore = (*Driver)(nil)

// permitsTable is the name of the permit table of a lock table
// ("<Locks>_permits", created by [Setup] like the waiter table).
func permitsTable(lockTable string) string { return lockTable + "_permits" }

// permitFenceKey returns the key of the permit fence counter of the
// normalised key k, in its stored form: a row of the fence counter table
// under "permit:<key>", apart from the lock counter "fence:<key>" (no
// lock fence key starts with "permit:", and hashed forms hash different
// strings).
func permitFenceKey(k string) (string, error) {
	f, err := driver.StorageKey("", "permit:"+k, storageLimit, storageReserve)
	return dbText(f), err
}

// permitQueries holds the SQL of the permit operations (docs/postgres.md,
// "Permits").
type permitQueries struct {
	permitLock, acquirePermit   string
	releasePermit, extendPermit string
	permits, sweepPermits       string
}

// buildPermitQueries renders the permit statements with r (the table
// names and clock expressions of buildQueries), the wake-ups and test
// hooks of o, and listening, the SQL probe for a LISTEN connection of the
// lock table.
func buildPermitQueries(r *strings.Replacer, o options, listening string) permitQueries {
	// A release wakes the permit watchers of its key (WatchPermits) as a
	// lock release does the lock's: $3 channel, $4 whether a listener was
	// seen (Driver.listenerSeen), NULL to probe now.
	notify, probe := ``, `NULL::bool, 0::bigint`
	if o.wakeups {
		notify = `, ntf AS MATERIALIZED (
  SELECT pg_notify($3::text, md5('` + permitNotifyPrefix + `' || $1::text)) FROM del
  WHERE COALESCE($4::bool, ` + listening + `)
)`
		probe = `CASE WHEN $4::bool IS NULL THEN ` + listening + ` END, (SELECT count(*) FROM ntf)`
	}
	hold := "0"
	if o.permitExtendHold > 0 {
		hold = `(SELECT count(*) FROM (SELECT pg_sleep(` +
			strconv.FormatFloat(o.permitExtendHold.Seconds(), 'f', 6, 64) + `) FROM upd) s)`
	}
	q := permitQueries{
		// Serialises the acquirers of a key's permits: the first statement
		// of the acquire batch, so that the acquire statement's snapshot is
		// taken after every earlier acquirer of the key committed.
		// Transaction-scoped (PgBouncer-safe); its two-key space and the
		// table name keep it apart from Acquire's lock and AllowN's.
		permitLock: `SELECT pg_advisory_xact_lock(hashtext('{PLIT}'), hashtext($1::text))`,

		// $1 key, $2 permit fence key, $3 permit ID, $4 limit, $5 ttl ms,
		// $6 fence max, $7 HashKey of the key (key_debug).
		//
		// Only acquirers insert permits, and they hold the key's advisory
		// lock, so the snapshot sees every permit of the key. Concurrent
		// Release, Extend and Sweep only delete or extend rows: pr deletes
		// the permits that are expired in their newest version (DELETE
		// re-checks its condition under the row lock, so a permit extended
		// after the snapshot stays), and every other row of the snapshot
		// counts as live — a permit released meanwhile too, which errs on
		// the side of refusing. The counter is read in the same snapshot
		// (only acquirers write it; Sweep deletes it only once the floor
		// has passed it by the margin, when the next fence is the floor).
		acquirePermit: `WITH pr AS MATERIALIZED (
  DELETE FROM {P} p WHERE p.key = $1::text AND p.expires_at_ms <= {NOW} - {TOL}
  RETURNING p.permit_id
), lv AS MATERIALIZED (
  SELECT count(*) AS n, min(p.lim) AS lim, {NOW} AS now_ms FROM {P} p
  WHERE p.key = $1::text AND p.permit_id NOT IN (SELECT permit_id FROM pr)
), dec AS MATERIALIZED (
  SELECT l.now_ms, l.n < LEAST($4::int, COALESCE(l.lim, $4::int)) AS free,
    GREATEST(COALESCE((SELECT f.fence FROM {F} f WHERE f.fence_key = $2::text), 0) + 1, {FLOOR}) AS next
  FROM lv l
), ins AS (
  INSERT INTO {P} (key, permit_id, fence, lim, expires_at_ms, acquired_at_ms)
  SELECT $1::text, $3::text, d.next, $4::int, d.now_ms + $5::bigint, d.now_ms FROM dec d
  WHERE d.free AND d.next <= $6::bigint
  RETURNING fence, expires_at_ms
), fw AS (
  INSERT INTO {F} AS f (fence_key, fence, key_debug)
  SELECT $2::text, i.fence, $7::text FROM ins i
  ON CONFLICT (fence_key) DO UPDATE SET fence = EXCLUDED.fence, key_debug = EXCLUDED.key_debug
  RETURNING 1
)
SELECT d.free, d.next, (SELECT fence FROM ins), (SELECT expires_at_ms FROM ins), (SELECT count(*) FROM fw)
FROM dec d`,

		// $1 key, $2 permit ID (and $3, $4 of notify). Locks the row,
		// then reads the clock; deletes it, live (OK) or expired (reported
		// as such), and notifies the key's permit watchers. Like a lock
		// release it commits asynchronously (see the release query): a
		// lost permit release only keeps the permit until its TTL, and any
		// later acquisition that saw it flushes the WAL past it.
		releasePermit: `WITH cur AS MATERIALIZED (
  SELECT expires_at_ms FROM {P} WHERE key = $1::text AND permit_id = $2::text FOR UPDATE
), clk AS MATERIALIZED (
  SELECT c.expires_at_ms > {NOW} - {TOL} AS live FROM cur c
), del AS (
  DELETE FROM {P} p USING clk WHERE p.key = $1::text AND p.permit_id = $2::text
  RETURNING 1
)` + notify + `
SELECT (SELECT live FROM clk), (SELECT count(*) FROM del), set_config('synchronous_commit', 'off', true), ` + probe,

		// $1 key, $2 permit ID, $3 ttl ms. Locks the row, then reads the
		// clock; extends a live permit, deletes an expired one. The last
		// column is the permitExtendHold test hook.
		extendPermit: `WITH cur AS MATERIALIZED (
  SELECT p.expires_at_ms FROM {P} p WHERE p.key = $1::text AND p.permit_id = $2::text FOR UPDATE OF p
), clk AS MATERIALIZED (
  SELECT c.expires_at_ms, {NOW} AS now_ms FROM cur c
), upd AS (
  UPDATE {P} p SET expires_at_ms = k.now_ms + $3::bigint FROM clk k
  WHERE p.key = $1::text AND p.permit_id = $2::text AND k.expires_at_ms > k.now_ms - {TOL}
  RETURNING p.expires_at_ms
), del AS (
  DELETE FROM {P} p USING clk k
  WHERE p.key = $1::text AND p.permit_id = $2::text AND k.expires_at_ms <= k.now_ms - {TOL}
  RETURNING 1
)
SELECT (SELECT count(*) FROM clk), (SELECT max(expires_at_ms) FROM upd), (SELECT count(*) FROM del), ` + hold,

		// $1 key.
		permits: `SELECT p.permit_id, p.fence, p.expires_at_ms, p.acquired_at_ms
FROM {P} p, (SELECT {NOW} AS now_ms) k
WHERE p.key = $1::text AND p.expires_at_ms > k.now_ms - {TOL}
ORDER BY p.fence`,

		// $1 batch size: permits expired by more than the guard, re-checked
		// on the newest row version under its row lock. Counters go with
		// the lock counters in the main sweep statement.
		sweepPermits: `DELETE FROM {P} WHERE (key, permit_id) IN (
  SELECT key, permit_id FROM {P} WHERE expires_at_ms < {NOW} - {GUARD}
  LIMIT $1::int FOR UPDATE SKIP LOCKED)
AND expires_at_ms < {NOW} - {GUARD}`,
	}
	for _, p := range []*string{&q.permitLock, &q.acquirePermit, &q.releasePermit, &q.extendPermit, &q.permits, &q.sweepPermits} {
		*p = r.Replace(*p)
	}
	return q
}

// AcquirePermit takes one permit of key for ttl if fewer permits are live
// than limit and than the limit of each live permit, in one round trip: a
// pipelined batch of the key's transaction-scoped advisory lock and one
// statement that prunes the key's expired permits, counts the live ones
// and, if there is room, inserts the permit and its fence counter. The
// fence is max(counter + 1, the server clock's fence floor), counted apart
// from the key's lock fences. A full semaphore is the result {Acquired:
// false, Reason: "locked"} and writes no permit or counter. If ctx ends, or
// the connection fails, while the request may be in flight, the permit ID
// is released in the background (best effort, 5s); otherwise a permit
// acquired unbeknown to the caller lasts until its TTL.
func (d *Driver) AcquirePermit(ctx context.Context, key string, limit int, ttl time.Duration) (driver.AcquireResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, ttlMs, err := driver.CheckPermitKeyTTL(ctx, key, limit, ttl)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	base, err := baseKey(k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	fk, err := permitFenceKey(k)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	id := driver.NewLockID()
	var (
		free       bool
		next       int64
		fence, exp *int64
	)
	b := &pgx.Batch{}
	b.Queue(d.q.permitLock, base)
	b.Queue(d.q.acquirePermit, base, fk, id, limit, ttlMs, int64(driver.FenceMax), driver.HashKey(k)).QueryRow(func(row pgx.Row) error {
		return row.Scan(&free, &next, &fence, &exp, nil)
	})
	if err := d.sendAcquire(ctx, b, k, func() { d.compensatePermit(base, id) }); err != nil {
		return driver.AcquireResult{}, err
	}
	return d.acquired(ctx, k, id, free, next, exp, fence) // nil exp or fence: unreachable, a fresh ID never conflicts
}

// compensatePermit releases the permit id of base in the background, after
// an AcquirePermit whose outcome is unknown. It takes the key's advisory
// lock first, so that it runs after an acquisition of the permit that is
// already under way; one that has not reached the lock yet may still
// commit after it, and that permit then lasts until its TTL.
func (d *Driver) compensatePermit(base, id string) {
	d.goBackground(compensateTimeout, func(ctx context.Context) {
		b := &pgx.Batch{}
		b.Queue(d.q.permitLock, base)
		args, _, _ := d.permitReleaseArgs(base, id)
		b.Queue(d.q.releasePermit, args...)
		_ = d.pool.SendBatch(ctx, b).Close()
	})
}

// permitReleaseArgs returns the arguments of the releasePermit statement
// for the permit id of base and, with wake-ups on, the listener answer it
// passes (nil: the statement probes) and when that answer was taken.
func (d *Driver) permitReleaseArgs(base, id string) (args []any, seen *bool, probed time.Time) {
	args = []any{base, id}
	if d.opts.wakeups {
		seen, probed = d.listenerSeen()
		args = append(args, d.q.channel, seen)
	}
	return args, seen, probed
}

// checkPermitCall validates a permit ID and key and returns the normalised
// key and its storage key.
func checkPermitCall(ctx context.Context, key, permitID string) (k, base string, err error) {
	if err := driver.ValidateLockID(permitID); err != nil {
		return "", "", err
	}
	return driver.CheckKeyAs(ctx, key, baseKey)
}

// ReleasePermit deletes the permit permitID of key in one statement that
// locks the row before reading the server clock: OK if it was live, else
// Detail "expired" (the row is deleted too) or "not-found". Of concurrent
// releases exactly one reports OK. Like [Driver.Release] it commits
// asynchronously: a release lost in a server crash only keeps the permit
// until its TTL runs out.
func (d *Driver) ReleasePermit(ctx context.Context, key, permitID string) (driver.ReleaseResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := checkPermitCall(ctx, key, permitID)
	if err != nil {
		return driver.ReleaseResult{}, err
	}
	args, seen, probed := d.permitReleaseArgs(base, permitID)
	var live, answer *bool
	var deleted int64
	if err := d.pool.QueryRow(ctx, d.q.releasePermit, args...).Scan(&live, &deleted, nil, &answer, nil); err != nil {
		return driver.ReleaseResult{}, withLockID(withKey(mapError(ctx, err), k), permitID)
	}
	if seen == nil && answer != nil {
		d.sawListener(*answer, probed)
	}
	switch {
	case live == nil:
		return driver.ReleaseResult{Detail: driver.DetailNotFound}, nil
	case *live && deleted > 0:
		return driver.ReleaseResult{OK: true}, nil
	default:
		return driver.ReleaseResult{Detail: driver.DetailExpired}, nil
	}
}

// ExtendPermit sets the expiry of the live permit permitID of key to
// server-now + ttl, in one statement that locks the row before reading the
// clock. It never recreates a permit: an expired one is deleted and
// reported as "expired", an absent one as "not-found".
func (d *Driver) ExtendPermit(ctx context.Context, key, permitID string, ttl time.Duration) (driver.ExtendResult, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := checkPermitCall(ctx, key, permitID)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	ttlMs, err := driver.TTLMillis(ttl)
	if err != nil {
		return driver.ExtendResult{}, err
	}
	var found int64
	var exp *int64
	if err := d.pool.QueryRow(ctx, d.q.extendPermit, base, permitID, ttlMs).Scan(&found, &exp, nil, nil); err != nil {
		return driver.ExtendResult{}, withLockID(withKey(mapError(ctx, err), k), permitID)
	}
	switch {
	case exp != nil:
		return driver.ExtendResult{OK: true, ExpiresAtMs: *exp}, nil
	case found > 0:
		return driver.ExtendResult{Detail: driver.DetailExpired}, nil
	default:
		return driver.ExtendResult{Detail: driver.DetailNotFound}, nil
	}
}

// Permits returns the live permits of key in fence order (one read-only
// statement). It is diagnostic.
func (d *Driver) Permits(ctx context.Context, key string) ([]driver.LockInfo, error) {
	ctx, cancel := d.bound(ctx)
	defer cancel()
	k, base, err := driver.CheckKeyAs(ctx, key, baseKey)
	if err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, d.q.permits, base)
	if err != nil {
		return nil, withKey(mapError(ctx, err), k)
	}
	var out []driver.LockInfo
	for rows.Next() {
		var (
			id            string
			f, exp, acqMs int64
		)
		if err := rows.Scan(&id, &f, &exp, &acqMs); err != nil {
			rows.Close()
			return nil, withKey(mapError(ctx, err), k)
		}
		out = append(out, driver.LockInfo{Key: k, LockID: id, Fence: driver.Fence(f), ExpiresAtMs: exp, AcquiredAtMs: acqMs})
	}
	if err := rows.Err(); err != nil {
		return nil, withKey(mapError(ctx, err), k)
	}
	return out, nil
}

// sweepPermits deletes permits expired by more than [driver.CleanupGuardMs]
// in batches, for [Driver.Sweep]. A database whose permit table has not
// been created yet (Setup not run since the upgrade) has no permits: that
// is 0, not an error.
func (d *Driver) sweepPermits(ctx context.Context) (deleted int64, err error) {
	for {
		tag, err := d.pool.Exec(ctx, d.q.sweepPermits, sweepBatch)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42P01" && ctx.Err() == nil {
				return deleted, nil
			}
			return deleted, mapError(ctx, err)
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < sweepBatch {
			return deleted, nil
		}
	}
}
