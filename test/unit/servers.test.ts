import { describe, it, expect } from 'vitest';
import { createMysqlDatabase, createPgDatabase, mysqlConnect, pgConnect } from '../support/databases.js';

describe('throwaway servers', () => {
  it('MariaDB runs with the binlog settings the engine needs', async () => {
    const db = await createMysqlDatabase('srv');
    const c = await mysqlConnect(db.url);
    const [rows] = await c.query("SELECT @@log_bin AS log_bin, @@binlog_format AS fmt, @@binlog_row_image AS img, @@binlog_row_metadata AS meta");
    await c.end();
    expect(rows).toEqual([{ log_bin: '1', fmt: 'ROW', img: 'FULL', meta: 'FULL' }]);
  });
  it('PostgreSQL runs with wal_level=logical', async () => {
    const db = await createPgDatabase('srv');
    const c = await pgConnect(db.url);
    const r = await c.query('SHOW wal_level');
    await c.end();
    expect(r.rows[0].wal_level).toBe('logical');
  });
});
