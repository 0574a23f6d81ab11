-- CONCURRENTLY: reads and writes continue while the index builds.
SET lock_timeout = '1s';
CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);

-- shadowshift:down
SET lock_timeout = '1s';
DROP INDEX CONCURRENTLY orders_created_at_idx;
