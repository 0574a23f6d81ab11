-- A status for orders: added nullable (catalog only), filled in batches,
-- made NOT NULL once every application instance writes it.
-- shadowshift-lint-config set-not-null=warning
SET lock_timeout = '1s';

-- shadowshift:expand
ALTER TABLE orders ADD COLUMN status varchar(16);

-- shadowshift:backfill
UPDATE orders SET status = 'paid' WHERE status IS NULL;

-- shadowshift:contract
-- On a big table the runner does this through CHECK ... NOT VALID + VALIDATE.
SET lock_timeout = '1s';
ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'new';
ALTER TABLE orders ALTER COLUMN status SET NOT NULL;

-- shadowshift:down
SET lock_timeout = '1s';
ALTER TABLE orders DROP COLUMN status;
