-- INT -> BIGINT copies the table (not INSTANT). On a table above
-- --online-threshold the planner sends it through the online engine;
-- `shadowshift migrate plan` says so beforehand.
-- shadowshift-lint-config rewriting-type-change=warning mysql-non-instant-alter=warning
ALTER TABLE orders MODIFY quantity BIGINT NOT NULL;

-- shadowshift:down
ALTER TABLE orders MODIFY quantity INT NOT NULL;
