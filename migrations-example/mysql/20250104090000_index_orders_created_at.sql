-- Built with ALGORITHM=INPLACE, LOCK=NONE: reads and writes continue.
CREATE INDEX orders_created_at_idx ON orders (created_at);

-- shadowshift:down
DROP INDEX orders_created_at_idx ON orders;
