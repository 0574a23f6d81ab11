// With lower_case_table_names=1 the server stores (and the binlog's table maps carry)
// schema and table names in lower case, whatever case the user typed. A job given
// `/Shop` and `--table Orders` must work on the stored names, or its binlog filter
// drops every event of the table and of its own changelog.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { tableNames } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

describe('lower_case_table_names=1', () => {
  let server: RunningServer;
  let admin: Connection;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowshift-lctn-'));
    server = await startMariaDb({ extraArgs: ['--lower-case-table-names=1'] });
    admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE Shop');
    await admin.query('CREATE TABLE Shop.Orders (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20) NULL)');
    await admin.query(`INSERT INTO Shop.Orders SELECT seq, seq, CONCAT('n', seq) FROM ${mysqlSeq(1, 500)}`);
  }, 60_000);
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a job on Shop.Orders follows every write and cuts over', async () => {
    const [stored] = await admin.query("SELECT TABLE_SCHEMA AS s, TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'Shop' AND TABLE_NAME = 'Orders'");
    expect(stored).toEqual([{ s: 'shop', n: 'orders' }]);

    const url = server.adminUrl('Shop');
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'Orders', 'ADD COLUMN w INT NOT NULL DEFAULT 7', { postponeCutoverFlagFile: flag, checksum: false, cutoverRetries: 2 });
    try {
      const running = job.prepare().then((r) => job.execute(r));
      running.catch(() => undefined);
      await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the job to postpone its cut-over');

      // Spelled as the application would, in several cases.
      const app = await mysqlConnect(url);
      try {
        await app.query('UPDATE Orders SET v = v + 1000 WHERE id <= 50');
        await app.query('DELETE FROM Orders WHERE id BETWEEN 100 AND 120');
        await app.query(`INSERT INTO Orders SELECT seq, seq, 'new' FROM ${mysqlSeq(501, 600)}`);
        await app.query("UPDATE SHOP.ORDERS SET note = 'upper' WHERE id = 7");
        await app.query("REPLACE INTO shop.orders VALUES (8, -8, 'lower')");
      } finally {
        await app.end();
      }
      const [expected] = await admin.query('SELECT id, v, note FROM Shop.Orders ORDER BY id');

      rmSync(flag);
      const outcome = await running.then(
        () => null,
        (e: Error) => e.message,
      );
      expect(outcome).toBeNull();
      expect(job.status().state).toBe('done');

      const [after] = await admin.query('SELECT id, v, note FROM Shop.Orders ORDER BY id');
      expect(after).toEqual(expected);
      const [w] = await admin.query('SELECT DISTINCT w FROM Shop.Orders');
      expect(w).toEqual([{ w: 7 }]);
      // Every name the job used was the stored one: its status, and its artefacts (only the backup is left).
      expect(job.status().table).toBe('shop.orders');
      const shop = await mysqlConnect(url);
      try {
        expect(await tableNames(shop)).toEqual(['orders', `orders_ssold_${job.id}`]);
      } finally {
        await shop.end();
      }
    } finally {
      rmSync(flag, { force: true });
      await job.close();
    }
  });
});
