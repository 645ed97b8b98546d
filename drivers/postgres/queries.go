package postgres

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/syncguard/syncguard"
)

// nowMsSQL and nowNsSQL read the server clock (not the transaction start).
const (
	nowMsSQL = `(floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint`
	nowNsSQL = `(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint`
)

// queries holds the SQL of every operation, rendered once per Driver with
// its (validated, quoted) table names.
type queries struct {
	advisory, acquire    string
	release, extend      string
	isLocked, cleanup    string
	lookupKey, lookupID  string
	putRecord, getRecord string
	recordFence          string
	deleteRecord         string
	rateLock, allow      string
	resetRate, sweep     string
	channel, listen      string
	listenApp            string
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

func buildQueries(o options) queries {
	t := o.tables
	tol := strconv.FormatInt(syncguard.ToleranceMs, 10)
	guard := strconv.FormatInt(syncguard.CleanupGuardMs, 10)
	r := strings.NewReplacer(
		"{L}", quote(t.Locks), "{F}", quote(t.Fences),
		"{R}", quote(t.Records), "{T}", quote(t.Rate),
		"{TLIT}", t.Rate, // validated identifier: safe inside a literal
		"{NOW}", nowMsSQL, "{NOWNS}", nowNsSQL,
		"{TOL}", tol, "{GUARD}", guard,
	)
	notify := ""
	if o.wakeups {
		// NOTIFY only while a LISTEN connection of this lock table is
		// connected to the database: committing a NOTIFY takes a
		// database-wide lock, which releases need not pay for nobody.
		notify = `, ntf AS MATERIALIZED (
  SELECT pg_notify($2::text, md5(key)) FROM del
  WHERE EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = '` + listenAppName(t.Locks) + `')
)`
	}
	notifyCount := "0"
	if o.wakeups {
		notifyCount = "(SELECT count(*) FROM ntf)"
	}
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
		// $6 fence max.
		acquire: `WITH live AS MATERIALIZED (
  SELECT count(*) AS n FROM {L} WHERE key = $1::text AND expires_at_ms > {NOW} - {TOL}
), cur AS MATERIALIZED (
  SELECT expires_at_ms FROM {L}
  WHERE key = $1::text AND expires_at_ms <= {NOW} - {TOL} FOR UPDATE
), clk AS MATERIALIZED (
  SELECT v.n = 0 AS free, {NOW} AS now_ms
  FROM live v, (SELECT count(*) FROM cur) c
), fc AS MATERIALIZED (
  SELECT f.fence FROM {F} f, clk WHERE f.fence_key = $2::text AND clk.free FOR UPDATE OF f
), dec AS MATERIALIZED (
  SELECT k.now_ms, k.free, COALESCE((SELECT max(fence) FROM fc), 0) + 1 AS next
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
  SELECT $2::text, d.next, $4::text FROM dec d, lk
  ON CONFLICT (fence_key) DO UPDATE SET fence = EXCLUDED.fence, key_debug = EXCLUDED.key_debug
  RETURNING f.fence
)
SELECT d.free, d.next, (SELECT max(expires_at_ms) FROM lk), (SELECT max(fence) FROM fw), d.now_ms FROM dec d`,

		// $1 lock ID, $2 notification channel.
		//
		// The release commits asynchronously: sc turns synchronous_commit
		// off for this transaction only (set_config(..., true) is SET
		// LOCAL: reverted at commit, PgBouncer-safe, still one statement).
		// This is the only operation that may skip the WAL flush:
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
		// Acquire and Extend stay synchronous: a lost Acquire could hand
		// out its fence again (contract section 2: fences strictly
		// increase across restarts), a lost Extend would shorten the lock
		// under a holder that was told it was extended.
		release: `WITH sc AS MATERIALIZED (
  SELECT set_config('synchronous_commit', 'off', true)
), cur AS MATERIALIZED (
  SELECT key, expires_at_ms FROM {L} WHERE lock_id = $1::text FOR UPDATE
), clk AS MATERIALIZED (
  SELECT c.key, c.expires_at_ms, {NOW} AS now_ms FROM cur c
), del AS (
  DELETE FROM {L} l USING clk
  WHERE l.key = clk.key AND l.lock_id = $1::text AND clk.expires_at_ms > clk.now_ms - {TOL}
  RETURNING l.key
)` + notify + `
SELECT (SELECT count(*) FROM clk), (SELECT count(*) FROM del), ` + notifyCount + `, $2::text FROM sc`,

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
)
SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM c)`,

		channel:   t.Locks,
		listenApp: listenAppName(t.Locks),
		listen:    `LISTEN ` + quote(t.Locks),
	}
	for _, p := range []*string{
		&q.acquire, &q.release, &q.extend, &q.isLocked, &q.cleanup, &q.lookupKey, &q.lookupID,
		&q.putRecord, &q.recordFence, &q.getRecord, &q.deleteRecord, &q.rateLock, &q.allow,
		&q.resetRate, &q.sweep,
	} {
		*p = r.Replace(*p)
	}
	return q
}

// listenAppName is the application_name of the LISTEN connection of a lock
// table (at most 58 bytes: table names are at most 48). Release sends a
// NOTIFY only while such a connection is in pg_stat_activity.
func listenAppName(lockTable string) string { return "syncguard:" + lockTable }
