-- integer -> bigint rewrites the table under ACCESS EXCLUSIVE. On a table
-- above --online-threshold the planner sends it through the online engine;
-- `shadowshift migrate plan` says so beforehand.
-- shadowshift-lint-config rewriting-type-change=warning
SET lock_timeout = '1s';
ALTER TABLE orders ALTER COLUMN quantity TYPE bigint;

-- shadowshift:down
SET lock_timeout = '1s';
ALTER TABLE orders ALTER COLUMN quantity TYPE integer;
