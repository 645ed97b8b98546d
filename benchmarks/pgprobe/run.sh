#!/usr/bin/env bash
# Probe of issue 22: the statements of one acquire+release pair, without any
# Go client, under pgbench (prepared statements, fresh random keys), in
# interleaved rounds: advisory locks, SyncGuard's statements (rendered from
# drivers/postgres with the default table names; the release with $3 =
# false, i.e. no LISTEN connection, as in the compare command's parallel
# runs), cirello pglock v1.16.2's statements (nextval, INSERT … ON
# CONFLICT, DELETE: two synchronous commits), and "min": the least any
# TTL lock with a durable acquisition can do, one upsert on a one-index
# table committed synchronously and a DELETE committed asynchronously
# (no fence counter that outlives the row, no lock-ID index, no queue, no
# retired IDs: not a contract-complete design, a floor). minasync commits
# both asynchronously.
#
#   PGPROBE_DB=pgprobe benchmarks/pgprobe/run.sh
set -euo pipefail
cd "$(dirname "$0")"
db=${PGPROBE_DB:-pgprobe}
url=(-h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -U "${PGUSER:-postgres}")
pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
pgbench=${pgbench:-pgbench}
psql "${url[@]}" -d postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql "${url[@]}" -d "$db" -q -v ON_ERROR_STOP=1 -1 -f ../../drivers/postgres/schema.sql >/dev/null
psql "${url[@]}" -d "$db" -qc "CREATE TABLE pglock (name text PRIMARY KEY, record_version_number bigint, data bytea, owner text);
CREATE SEQUENCE pglock_rvn OWNED BY pglock.record_version_number;
CREATE TABLE minlocks (key text PRIMARY KEY, lock_id text NOT NULL, exp bigint NOT NULL, fence bigint NOT NULL);"
for round in 1 2 3; do
	for c in 1 16 64; do
		for s in adv sg pglock min minasync; do
			tps=$("$pgbench" "${url[@]}" -n -M prepared -c "$c" -j 2 -T "${PGPROBE_SECONDS:-4}" -f "$s.sql" "$db" 2>&1 |
				awk '/^tps/ {print $3}')
			echo "round $round clients $c $s pairs/s $tps"
		done
	done
done
