-- A status for orders: added nullable (INSTANT), filled in batches, made
-- NOT NULL once every application instance writes it.
-- shadowshift-lint-config rewriting-type-change=warning mysql-non-instant-alter=warning

-- shadowshift:expand
ALTER TABLE orders ADD COLUMN status VARCHAR(16) NULL;

-- shadowshift:backfill
UPDATE orders SET status = 'paid' WHERE status IS NULL;

-- shadowshift:contract
-- Above --online-threshold this goes through the online engine.
ALTER TABLE orders MODIFY status VARCHAR(16) NOT NULL DEFAULT 'new';

-- shadowshift:down
ALTER TABLE orders DROP COLUMN status;
