\set r random(1, 2000000000)
SELECT nextval('pglock_rvn');
INSERT INTO pglock (name, record_version_number, data, owner) VALUES ('k'||:r, :r, NULL, 'o') ON CONFLICT (name) DO UPDATE SET record_version_number = CASE WHEN COALESCE(pglock.record_version_number = NULL, TRUE) THEN :r ELSE pglock.record_version_number END RETURNING record_version_number, data, owner;
DELETE FROM pglock WHERE name = 'k'||:r::bigint AND record_version_number = :r;
