package postgres

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard/driver"
)

// nowMsSQL and nowNsSQL read the server clock (not the transaction start).
const (
	nowMsSQL = `(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint`
	nowNsSQL = `(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint`
	nowUsSQL = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`
)

// floorSQL is the fence floor ([driver.FenceFloor]) of the server clock:
// 10 µs units since 2025-01-01.
var floorSQL = `((floor(extract(epoch FROM clock_timestamp()) * 1000000))::bigint - ` +
	strconv.FormatInt(driver.FenceEpochMs*1000, 10) + `) / ` + strconv.Itoa(1000/driver.FencePerMs)

// queries holds the SQL of every operation, rendered once per Driver with
// its (validated, quoted) table names.
type queries struct {
	advisory, acquire    string
	acquireQueued, leave string
	release, extend      string
	releaseHandoff       string
	isLocked, cleanup    string
	lookupKey, lookupID  string
	putRecord, getRecord string
	recordFence          string
	deleteRecord         string
	rateLock, allow      string
	resetRate, sweep     string
	channel, listen      string
	listenApp            string

	permitQueries
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func buildQueries(o options) queries {
	t := o.tables
	tol := strconv.FormatInt(driver.ToleranceMs, 10)
	guard := strconv.FormatInt(driver.CleanupGuardMs, 10)
	r := strings.NewReplacer(
		"{L}", quote(t.Locks), "{F}", quote(t.Fences), "{W}", quote(waitersTable(t.Locks)),
		"{R}", quote(t.Records), "{T}", quote(t.Rate), "{P}", quote(permitsTable(t.Locks)),
		"{TLIT}", t.Rate, "{PLIT}", permitsTable(t.Locks), // validated identifiers: safe inside a literal
		"{NOW}", nowMsSQL, "{NOWNS}", nowNsSQL, "{NOWUS}", nowUsSQL,
		"{TOL}", tol, "{GUARD}", guard,
		"{FLOOR}", floorSQL, "{FMARGIN}", strconv.FormatInt(driver.FenceMarginMs*driver.FencePerMs, 10),
	)
	// Committing a transaction that sent a NOTIFY takes a database-wide
	// lock, which releases need not pay for nobody: a release notifies
	// only while a LISTEN connection of this lock table is connected to
	// the database.
	listening := `EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = '` + listenAppName(t.Locks) + `')`
	// A grant notifies whatever this driver's WithWakeups: its waiter may
	// be another process's, listening.
	// $4 of releaseHandoff: whether a listener was seen
	// (Driver.listenerSeen), or NULL to probe now, as for a plain release:
	// probing pg_stat_activity in every hand-over put 0.4 ms on the path
	// from one holder to the next.
	grant := `
  SELECT pg_notify($2::text, '` + grantPrefix + `' || lock_id || '|' || fence || '|' || expires_at_ms || '|' || acquired_at_ms) FROM gr
  WHERE COALESCE($4::bool, ` + listening + `)`
	notifyPlain, notifyPlainCount, releaseProbe := "", "false", "NULL::bool"
	notifyHandoff := `, ntf AS MATERIALIZED (` + grant + `
)`
	if o.wakeups {
		// $3: a listener was seen (see Driver.listenerSeen); probing
		// pg_stat_activity in every release caps parallel releases.
		// $3: whether a listener was seen (Driver.listenerSeen), NULL to
		// probe now (COALESCE evaluates the probe only then).
		plain := `
  SELECT pg_notify($2::text, md5(key)) FROM del
  WHERE COALESCE($3::bool, ` + listening + `)`
		notifyPlain = `, ntf AS MATERIALIZED (` + plain + `
)`
		notifyPlainCount = "EXISTS (SELECT 1 FROM ntf)"
		releaseProbe = `CASE WHEN $3::bool IS NULL THEN ` + listening + ` END`
		notifyHandoff = `, ntf AS MATERIALIZED (
  SELECT pg_notify($2::text, md5(key)) FROM del
  WHERE COALESCE($4::bool, ` + listening + `)
  UNION ALL` + grant + `
)`
	}
	const notifyHandoffCount = "(SELECT count(*) FROM ntf)"
	sleep, sleepJoin := "", ""
	if o.extendDelay > 0 {
		secs := strconv.FormatFloat(o.extendDelay.Seconds(), 'f', 6, 64)
		sleep = `slp AS MATERIALIZED (SELECT pg_sleep(` + secs + `) AS s), `
		sleepJoin = `, slp`
	}
	q := queries{
		// Upstream-compatible serialisation of acquirers of one key. It is
		// transaction-scoped (PgBouncer-safe) and is the first statement
		// of the acquire batch, so the acquire statement's snapshot is
		// taken after it is granted.
		advisory: `SELECT pg_advisory_xact_lock(hashtext($1::text))`,

		// $1 key, $2 fence key, $3 lock ID, $4 user key, $5 ttl ms,
		// $6 fence max. A lock ID given up (gone: the tombstone that
		// compensate and leave write) is never acquired, so an attempt
		// still in flight when its caller gave up cannot take the key
		// after the compensating release.
		acquire: acquireCore + `
SELECT d.free, d.next, (SELECT expires_at_ms FROM lk), (SELECT fence FROM fw), d.now_ms FROM dec d`,

		// The attempt of a queued waiter (see WatchHandoff): $1..$6 as
		// acquire, with $3 the waiter ID, $7 the waiter's liveness (ms).
		// It acquires a free key like acquire; finds a lock a release
		// granted to the waiter (own) and claims it; or else joins (or
		// renews its place in) the key's queue. A waiter that holds the
		// key leaves the queue.
		acquireQueued: acquireCore + `, own AS MATERIALIZED (
  SELECT l.expires_at_ms, l.fence FROM {L} l, clk
  WHERE l.key = $1::text AND l.lock_id = $3::text AND l.expires_at_ms > clk.now_ms - {TOL}
), wq AS (
  INSERT INTO {W} AS w (key, waiter_id, seq, live_until_ms, ttl_ms, fence_key)
  SELECT $1::text, $3::text, {NOWUS}, k.now_ms + $7::bigint, $5::bigint, $2::text
  FROM clk k WHERE NOT k.free AND NOT k.gone AND NOT EXISTS (SELECT 1 FROM own)
  ON CONFLICT (key, waiter_id) DO UPDATE SET live_until_ms = EXCLUDED.live_until_ms, ttl_ms = EXCLUDED.ttl_ms
  RETURNING 1
), wd AS (
  DELETE FROM {W} w WHERE w.key = $1::text AND w.waiter_id = $3::text AND w.seq >= 0
    AND (EXISTS (SELECT 1 FROM lk) OR EXISTS (SELECT 1 FROM own))
  RETURNING 1
)
SELECT d.free, d.next, (SELECT max(expires_at_ms) FROM lk), (SELECT max(fence) FROM fw), d.now_ms,
  (SELECT max(expires_at_ms) FROM own), (SELECT max(fence) FROM own), (SELECT count(*) FROM wq),
  set_config('synchronous_commit',
    CASE WHEN EXISTS (SELECT 1 FROM lk) THEN current_setting('synchronous_commit') ELSE 'off' END, true)
FROM dec d`,

		// $1 key, $2 waiter ID: a waiter that stops waiting leaves the
		// queue, after the key's advisory lock (a lock granted to it is
		// then released by ID). Its row stays for a minute as a tombstone
		// (seq -1), which no release grants to and which makes a late
		// attempt of the waiter (sent before it left, run after) a no-op.
		// compensate writes the same tombstone for a plain Acquire's lock
		// ID.
		leave: `INSERT INTO {W} AS w (key, waiter_id, seq, live_until_ms, ttl_ms, fence_key)
VALUES ($1::text, $2::text, -1, {NOW} + ` + strconv.Itoa(leftKeepMs) + `, 0, '')
ON CONFLICT (key, waiter_id) DO UPDATE SET seq = -1, live_until_ms = EXCLUDED.live_until_ms`,

		// $1 lock ID, $2 notification channel, $3 (with wakeups only)
		// whether a listener was seen, or NULL to probe pg_stat_activity
		// (last column: the probe's answer).
		//
		// The plain release: it deletes the lock unless waiters are
		// queued for its key (last column), which releaseHandoff then
		// handles. A release hands the key over to the head of its waiter queue
		// (see WatchHandoff), if a live waiter is queued: it rewrites the
		// lock row for the waiter (its ID, the next fence, a TTL from
		// now), drops it from the queue and sends it the grant
		// ("g:<waiterID>|<fence>|<expiresAtMs>|<acquiredAtMs>"), so that
		// the key is never free in between and only that waiter wakes.
		// Without one it deletes the row and NOTIFYs md5(key), which wakes
		// every watcher of the key. Waiters whose place lapsed are dropped.
		// When the key has waiters, the release first takes the key's
		// advisory lock, as Acquire does: a waiter's attempt and a grant
		// to it never interleave, so a waiter is never queued again while
		// a grant to it is being written.
		//
		// A plain release commits asynchronously: the final set_config
		// turns synchronous_commit off for this transaction only
		// (set_config(..., true) is SET LOCAL: reverted at commit,
		// PgBouncer-safe, still one statement). This is the only operation
		// that may skip the WAL flush:
		//   - Losing it in a server crash (at most ~3 x wal_writer_delay
		//     of async commits) only brings the deleted row back with its
		//     old expiry: the key looks held until TTL + tolerance, then
		//     Acquire takes it as usual. That is liveness, not safety: the
		//     releasing holder has stopped anyway, and the fence counter
		//     is untouched by a release.
		//   - It cannot be reordered with durable state. WAL is one
		//     sequence and recovery replays a prefix of it. A transaction
		//     that saw this release (e.g. an Acquire of the freed key)
		//     started after its commit record was inserted, so its own
		//     commit record comes later, and a synchronous commit flushes
		//     the WAL up to itself: acknowledging that Acquire makes this
		//     release durable first. (With synchronous standbys the
		//     later commit likewise waits for them up to its LSN.)
		// A granting release keeps the session's setting, like Acquire and
		// Extend: a lost grant or Acquire could hand out its fence again
		// (docs/contract.md#fences: fences strictly increase across restarts),
		// a lost Extend would shorten the lock under a holder that was
		// told it was extended.
		release: `WITH cur AS MATERIALIZED (
  SELECT key, expires_at_ms FROM {L} WHERE lock_id = $1::text FOR UPDATE
), clk AS MATERIALIZED (
  SELECT c.key, c.expires_at_ms > {NOW} - {TOL} AS live,
    EXISTS (SELECT 1 FROM {W} w WHERE w.key = c.key AND w.seq >= 0) AS queued
  FROM cur c
), del AS (
  DELETE FROM {L} l USING clk
  WHERE l.key = clk.key AND l.lock_id = $1::text AND clk.live AND NOT clk.queued
  RETURNING l.key
)` + notifyPlain + `
SELECT (SELECT live FROM clk), EXISTS (SELECT 1 FROM del), ` + notifyPlainCount + `, (SELECT queued FROM clk), ` + releaseProbe + `,
  set_config('synchronous_commit', 'off', true), $2::text`,

		// $1 lock ID, $2 notification channel, $3 fence max, $4 whether a
		// listener was seen (NULL: probe; last column: the probe's
		// answer): the release of a key with queued waiters, which the plain release leaves
		// alone (see above).
		releaseHandoff: `WITH k0 AS MATERIALIZED (
  SELECT key FROM {L} WHERE lock_id = $1::text
), adv AS MATERIALIZED (
  SELECT pg_advisory_xact_lock(hashtext(k0.key)) FROM k0
  WHERE EXISTS (SELECT 1 FROM {W} w WHERE w.key = k0.key)
), cur AS MATERIALIZED (
  SELECT l.key, l.expires_at_ms, l.user_key FROM {L} l
  WHERE l.lock_id = $1::text AND (SELECT count(*) FROM adv) >= 0 FOR UPDATE OF l
), clk AS MATERIALIZED (
  SELECT c.key, c.expires_at_ms, c.user_key, {NOW} AS now_ms FROM cur c
), hd AS MATERIALIZED (
  SELECT w.waiter_id, w.ttl_ms, w.fence_key FROM {W} w, clk
  WHERE w.key = clk.key AND clk.expires_at_ms > clk.now_ms - {TOL} AND w.live_until_ms > clk.now_ms
    AND w.seq >= 0
  ORDER BY w.seq, w.waiter_id LIMIT 1 FOR UPDATE OF w
), fc AS MATERIALIZED (
  SELECT f.fence FROM {F} f, hd WHERE f.fence_key = hd.fence_key FOR UPDATE OF f
), dec AS MATERIALIZED (
  SELECT h.waiter_id, h.ttl_ms, h.fence_key, GREATEST(COALESCE((SELECT max(fence) FROM fc), 0) + 1, {FLOOR}) AS next
  FROM hd h
), gr AS (
  UPDATE {L} l SET lock_id = d.waiter_id, expires_at_ms = k.now_ms + d.ttl_ms, acquired_at_ms = k.now_ms,
    fence = lpad(d.next::text, 15, '0')
  FROM dec d, clk k
  WHERE l.key = k.key AND l.lock_id = $1::text AND d.next <= $3::bigint
  RETURNING l.lock_id, l.fence, l.expires_at_ms, l.acquired_at_ms
), fw AS (
  INSERT INTO {F} AS f (fence_key, fence, key_debug)
  SELECT d.fence_key, d.next, left(encode(sha256(convert_to(k.user_key, 'UTF8')), 'hex'), 24) FROM dec d, clk k, gr
  ON CONFLICT (fence_key) DO UPDATE SET fence = EXCLUDED.fence, key_debug = EXCLUDED.key_debug
  RETURNING 1
), del AS (
  DELETE FROM {L} l USING clk
  WHERE l.key = clk.key AND l.lock_id = $1::text AND clk.expires_at_ms > clk.now_ms - {TOL}
    AND NOT EXISTS (SELECT 1 FROM dec WHERE dec.next <= $3::bigint)
  RETURNING l.key
), wdel AS (
  DELETE FROM {W} w USING clk
  WHERE w.key = clk.key AND (w.waiter_id IN (SELECT lock_id FROM gr) OR w.live_until_ms <= clk.now_ms)
  RETURNING 1
)` + notifyHandoff + `
SELECT (SELECT count(*) FROM clk), (SELECT count(*) FROM del) + (SELECT count(*) FROM gr), ` + notifyHandoffCount + `, $2::text,
  set_config('synchronous_commit',
    CASE WHEN EXISTS (SELECT 1 FROM gr) THEN current_setting('synchronous_commit') ELSE 'off' END, true),
  CASE WHEN $4::bool IS NULL THEN ` + listening + ` END`,

		// $1 lock ID, $2 ttl ms.
		extend: `WITH ` + sleep + `cur AS MATERIALIZED (
  SELECT l.key, l.expires_at_ms FROM {L} l` + sleepJoin + ` WHERE l.lock_id = $1::text FOR UPDATE OF l
), clk AS MATERIALIZED (
  SELECT c.key, c.expires_at_ms, {NOW} AS now_ms FROM cur c
), upd AS (
  UPDATE {L} l SET expires_at_ms = clk.now_ms + $2::bigint FROM clk
  WHERE l.key = clk.key AND l.lock_id = $1::text AND clk.expires_at_ms > clk.now_ms - {TOL}
  RETURNING l.expires_at_ms
)
SELECT (SELECT count(*) FROM clk), (SELECT max(expires_at_ms) FROM upd)`,

		isLocked: `SELECT (SELECT expires_at_ms FROM {L} WHERE key = $1::text), {NOW}`,

		// Deletes only if expired by more than the guard, re-checked on
		// the latest row version under its row lock.
		cleanup: `DELETE FROM {L} WHERE key = $1::text AND expires_at_ms < {NOW} - {GUARD}`,

		lookupKey: `SELECT key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key, {NOW}
FROM {L} WHERE key = $1::text`,
		lookupID: `SELECT key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key, {NOW}
FROM {L} WHERE lock_id = $1::text`,

		// $1 name, $2 fence, $3 value, $4 ttl ms (0: none).
		putRecord: `WITH ins AS (
  INSERT INTO {R} AS r (name, fence, value, expires_at_ms)
  SELECT $1::text, $2::bigint, $3::bytea,
         CASE WHEN $4::bigint = 0 THEN NULL ELSE c.now_ms + $4::bigint END
  FROM (SELECT {NOW} AS now_ms) c
  ON CONFLICT (name) DO UPDATE SET fence = EXCLUDED.fence, value = EXCLUDED.value,
    expires_at_ms = EXCLUDED.expires_at_ms
  WHERE r.fence <= EXCLUDED.fence OR (r.expires_at_ms IS NOT NULL AND r.expires_at_ms <= {NOW})
  RETURNING r.fence
)
SELECT (SELECT max(fence) FROM ins), (SELECT fence FROM {R} WHERE name = $1::text)`,
		recordFence: `SELECT fence FROM {R} WHERE name = $1::text`,
		getRecord: `SELECT value, fence, expires_at_ms FROM {R}
WHERE name = $1::text AND (expires_at_ms IS NULL OR expires_at_ms > {NOW})`,
		deleteRecord: `DELETE FROM {R}
WHERE name = $1::text AND fence <= $2::bigint AND (expires_at_ms IS NULL OR expires_at_ms > {NOW})`,

		rateLock: `SELECT pg_advisory_xact_lock(hashtext('{TLIT}'), hashtext($1::text))`,
		// $1 key, $2 increment ns, $3 burst offset ns.
		allow: `WITH cur AS MATERIALIZED (
  SELECT tat_ns FROM {T} WHERE key = $1::text FOR UPDATE
), clk AS MATERIALIZED (
  SELECT c.tat, {NOWNS} AS now_ns FROM (SELECT max(tat_ns) AS tat FROM cur) c
), dec AS MATERIALIZED (
  SELECT now_ns, GREATEST(COALESCE(tat, 0) - now_ns, 0) AS tat_rel FROM clk
), up AS (
  INSERT INTO {T} AS t (key, tat_ns)
  SELECT $1::text, d.now_ns + d.tat_rel + $2::bigint FROM dec d
  WHERE $2::bigint > 0 AND d.tat_rel + $2::bigint - $3::bigint <= 0
  ON CONFLICT (key) DO UPDATE SET tat_ns = EXCLUDED.tat_ns
  RETURNING 1
)
SELECT d.tat_rel, (SELECT count(*) FROM up) FROM dec d`,
		resetRate: `DELETE FROM {T} WHERE key = $1::text`,

		// $1 batch size.
		sweep: `WITH a AS (
  DELETE FROM {L} WHERE key IN (
    SELECT key FROM {L} WHERE expires_at_ms < {NOW} - {GUARD}
    LIMIT $1::int FOR UPDATE SKIP LOCKED)
  AND expires_at_ms < {NOW} - {GUARD}
  RETURNING 1
), b AS (
  DELETE FROM {R} WHERE name IN (
    SELECT name FROM {R} WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= {NOW}
    LIMIT $1::int FOR UPDATE SKIP LOCKED)
  AND expires_at_ms IS NOT NULL AND expires_at_ms <= {NOW}
  RETURNING 1
), c AS (
  DELETE FROM {T} WHERE key IN (
    SELECT key FROM {T} WHERE tat_ns <= {NOWNS}
    LIMIT $1::int FOR UPDATE SKIP LOCKED)
  AND tat_ns <= {NOWNS}
  RETURNING 1
), w AS (
  DELETE FROM {W} WHERE (key, waiter_id) IN (
    SELECT key, waiter_id FROM {W} WHERE live_until_ms < {NOW} - {GUARD}
    LIMIT $1::int FOR UPDATE SKIP LOCKED)
  AND live_until_ms < {NOW} - {GUARD}
  RETURNING 1
), f AS (
  DELETE FROM {F} WHERE fence_key IN (
    SELECT fence_key FROM {F} WHERE fence < {FLOOR} - {FMARGIN}
    LIMIT $1::int FOR UPDATE SKIP LOCKED)
  AND fence < {FLOOR} - {FMARGIN}
  RETURNING 1
)
SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM c), (SELECT count(*) FROM w), (SELECT count(*) FROM f)`,

		channel:   t.Locks,
		listenApp: listenAppName(t.Locks),
		listen:    `LISTEN ` + quote(t.Locks),
	}
	for _, p := range []*string{
		&q.acquire, &q.acquireQueued, &q.leave, &q.release, &q.releaseHandoff, &q.extend, &q.isLocked, &q.cleanup, &q.lookupKey, &q.lookupID,
		&q.putRecord, &q.recordFence, &q.getRecord, &q.deleteRecord, &q.rateLock, &q.allow,
		&q.resetRate, &q.sweep,
	} {
		*p = r.Replace(*p)
	}
	q.permitQueries = buildPermitQueries(r, o, listening)
	return q
}

// acquireCore is the body of the acquire statement, shared with the
// queued attempt: it reports contention for a live lock (or a lock ID given
// up), or locks the expired row and upserts the new lock on the condition
// that the newest version of the stored row is still expired.
const acquireCore = `WITH cur AS MATERIALIZED (
  SELECT 1 FROM {L}
  WHERE key = $1::text AND expires_at_ms <= {NOW} - {TOL} FOR UPDATE
), clk AS MATERIALIZED (
  SELECT NOT s.lv AND NOT s.gn AS free, s.gn AS gone, s.now_ms FROM (SELECT
    EXISTS (SELECT 1 FROM {L} WHERE key = $1::text AND expires_at_ms > {NOW} - {TOL}) AS lv,
    EXISTS (SELECT 1 FROM {W} WHERE key = $1::text AND waiter_id = $3::text AND seq < 0) AS gn,
    {NOW} AS now_ms
    FROM (SELECT count(*) FROM cur) c OFFSET 0) s
), dec AS MATERIALIZED (
  SELECT k.now_ms, k.free, GREATEST(COALESCE((SELECT f.fence FROM {F} f WHERE f.fence_key = $2::text AND k.free FOR UPDATE), 0) + 1, {FLOOR}) AS next
  FROM clk k
), lk AS (
  INSERT INTO {L} AS l (key, lock_id, expires_at_ms, acquired_at_ms, fence, user_key)
  SELECT $1::text, $3::text, d.now_ms + $5::bigint, d.now_ms, lpad(d.next::text, 15, '0'), $4::text
  FROM dec d WHERE d.free AND d.next <= $6::bigint
  ON CONFLICT (key) DO UPDATE SET lock_id = EXCLUDED.lock_id, expires_at_ms = EXCLUDED.expires_at_ms,
    acquired_at_ms = EXCLUDED.acquired_at_ms, fence = EXCLUDED.fence, user_key = EXCLUDED.user_key
  WHERE l.expires_at_ms <= EXCLUDED.acquired_at_ms - {TOL}
  RETURNING l.expires_at_ms
), fw AS (
  INSERT INTO {F} AS f (fence_key, fence, key_debug)
  SELECT $2::text, d.next, left(encode(sha256(convert_to($4::text, 'UTF8')), 'hex'), 24) FROM dec d, lk
  ON CONFLICT (fence_key) DO UPDATE SET fence = EXCLUDED.fence, key_debug = EXCLUDED.key_debug
  RETURNING f.fence
)
`

// listenAppName is the application_name of the LISTEN connection of a lock
// table (at most 58 bytes: table names are at most 48). Release sends a
// NOTIFY only while such a connection is in pg_stat_activity.
func listenAppName(lockTable string) string { return "syncguard:" + lockTable }

// leftKeepMs is how long the tombstone of a waiter that left is kept.
const leftKeepMs = 60_000

// waitersTable is the name of the hand-off queue table of a lock table.
func waitersTable(lockTable string) string { return lockTable + "_waiters" }
