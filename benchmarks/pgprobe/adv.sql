\set r random(1, 2000000000)
SELECT pg_advisory_lock(:r);
SELECT pg_advisory_unlock(:r);
