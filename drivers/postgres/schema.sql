-- SyncGuard PostgreSQL schema (drivers/postgres). Idempotent: safe to run
-- again. Setup renders this file with the configured table names (the
-- defaults below) and runs it in one transaction; apply it yourself with
--   psql -v ON_ERROR_STOP=1 -1 -f schema.sql
-- when DDL is managed by a migration tool. Every identifier is quoted, so
-- custom names are case-sensitive.
SELECT pg_advisory_xact_lock(hashtext('syncguard_setup'));

-- Lock data: one row per held (or expired, not yet cleaned up) lock.
CREATE TABLE IF NOT EXISTS "syncguard_locks" (
    key            text   NOT NULL PRIMARY KEY, -- storage (base) key
    lock_id        text   NOT NULL,
    expires_at_ms  bigint NOT NULL,
    acquired_at_ms bigint NOT NULL,
    fence          text   NOT NULL,             -- 15 digits, zero-padded
    user_key       text   NOT NULL              -- normalised user key
);
CREATE UNIQUE INDEX IF NOT EXISTS "syncguard_locks_lock_id_idx" ON "syncguard_locks" (lock_id);
CREATE INDEX IF NOT EXISTS "syncguard_locks_expires_at_idx" ON "syncguard_locks" (expires_at_ms);

-- Waiters queued for a key by the first-come, first-served hand-off
-- (Driver.WatchHandoff, used by Guard): a release grants the key to the
-- oldest live waiter. Rows are short-lived; releases and Sweep drop waiters
-- that stopped renewing their place.
CREATE TABLE IF NOT EXISTS "syncguard_locks_waiters" (
    key           text   NOT NULL,            -- storage (base) key
    waiter_id     text   NOT NULL,            -- lock ID of a lock granted to it
    seq           bigint NOT NULL,            -- server time of joining (µs): queue order
    live_until_ms bigint NOT NULL,            -- renewed by each attempt; skipped after it
    ttl_ms        bigint NOT NULL,            -- TTL of a lock granted to it
    fence_key     text   NOT NULL,
    PRIMARY KEY (key, waiter_id)
);
CREATE INDEX IF NOT EXISTS "syncguard_locks_waiters_idx" ON "syncguard_locks_waiters" (key, seq);

-- Fence counters: a lock's under "fence:<key>", a semaphore's permit
-- counter under "permit:<key>". Sweep deletes a counter once the fence floor
-- has passed it by the margin (the next fence is then the floor).
CREATE TABLE IF NOT EXISTS "syncguard_fence_counters" (
    fence_key text   NOT NULL PRIMARY KEY,
    fence     bigint NOT NULL DEFAULT 0,
    key_debug text   NOT NULL DEFAULT ''
);

-- Fenced records (contract section 13).
CREATE TABLE IF NOT EXISTS "syncguard_records" (
    name          text   NOT NULL PRIMARY KEY,
    fence         bigint NOT NULL,
    value         bytea  NOT NULL,
    expires_at_ms bigint                        -- NULL: no expiry
);
CREATE INDEX IF NOT EXISTS "syncguard_records_expires_at_idx" ON "syncguard_records" (expires_at_ms)
    WHERE expires_at_ms IS NOT NULL;

-- GCRA rate state: theoretical arrival time in Unix nanoseconds.
CREATE TABLE IF NOT EXISTS "syncguard_rate" (
    key    text   NOT NULL PRIMARY KEY,
    tat_ns bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS "syncguard_rate_tat_idx" ON "syncguard_rate" (tat_ns);

-- Permits of the semaphore package (Driver.AcquirePermit): one row per held
-- (or expired, not yet pruned) permit. Acquisitions prune a key's expired
-- permits; Sweep deletes those expired by more than the cleanup guard.
CREATE TABLE IF NOT EXISTS "syncguard_locks_permits" (
    key            text    NOT NULL,            -- storage (base) key
    permit_id      text    NOT NULL,
    fence          bigint  NOT NULL,
    lim            integer NOT NULL,            -- the limit it was acquired with
    expires_at_ms  bigint  NOT NULL,
    acquired_at_ms bigint  NOT NULL,
    PRIMARY KEY (key, permit_id)
);
CREATE INDEX IF NOT EXISTS "syncguard_locks_permits_idx" ON "syncguard_locks_permits" (expires_at_ms);
