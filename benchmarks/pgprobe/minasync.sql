\set r random(1, 2000000000)
SET synchronous_commit = off;
INSERT INTO minlocks AS l (key, lock_id, exp, fence) VALUES ('k'||:r, 'id'||:r, (floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint + 30000, 1) ON CONFLICT (key) DO UPDATE SET lock_id = EXCLUDED.lock_id, exp = EXCLUDED.exp, fence = l.fence + 1 WHERE l.exp < (floor(extract(epoch FROM clock_timestamp()) * 1000))::bigint - 1000 RETURNING fence;
\startpipeline
BEGIN;
SET LOCAL synchronous_commit = off;
DELETE FROM minlocks WHERE key = 'k'||:r::bigint AND lock_id = 'id'||:r::bigint;
COMMIT;
\endpipeline
RESET synchronous_commit;
