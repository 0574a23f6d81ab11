// `migrate` takes the online engine's flags as `alter` does (issue 17): each one
// reaches the engine job a migration's big ALTER runs, seen in what the job did
// (its result in `up --json`, its log); a bad value exits 2 naming the flag.

import { describe, it, expect } from 'vitest';
import { rmSync } from 'node:fs';
import { openDb } from '../support/db.js';
import { cli, columnInfo, json, newDatabase, tableExists, tempDir, write, type Dialect } from './helpers.js';

const ROWS = 3000;

async function bigTable(dialect: Dialect, prefix: string) {
  const { url, db } = await newDatabase(dialect, prefix);
  await db.exec('CREATE TABLE items (id INT NOT NULL PRIMARY KEY, n INT NOT NULL, note VARCHAR(20))');
  await db.exec('CREATE INDEX items_n_idx ON items (n)');
  const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, ${i}, 'x')`).join(',');
  await db.exec(`INSERT INTO items (id, n, note) VALUES ${values}`);
  await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE items' : 'ANALYZE items');
  return { url, db };
}

const widen = (d: Dialect, column: string) =>
  d === 'mysql' ? `ALTER TABLE items MODIFY ${column} BIGINT NOT NULL;\n` : `ALTER TABLE items ALTER COLUMN ${column} TYPE bigint;\n`;

describe.each(['mysql', 'postgres'] as const)('migrate on %s: the engine flags reach the engine', (dialect) => {
  it('--no-checksum and --drop-old-table change what the engine job does; bad values exit 2 naming the flag', async () => {
    const { url, db } = await bigTable(dialect, 'meset');
    const dir = tempDir();
    const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--online-threshold', '1000'], { SHADOWSHIFT_URL: url });
    try {
      write(dir, '100_widen_n.sql', widen(dialect, 'n'));
      write(dir, '200_widen_id.sql', widen(dialect, 'id'));

      for (const [flags, message] of [
        [['--kill-blockers-after', '30'], /--kill-blockers-after \(30s\) must be shorter than the cut-over's whole wait for its lock, --cutover-lock-timeout × --cutover-retries \(3s × 10 = 30s\)/],
        [['--chunk-size', '0'], /--chunk-size must be a positive number \(got 0\)/],
        [['--checksum-interval', '-1'], /--checksum-interval must be a positive number/],
        [['--cutover-retries', 'x'], /--cutover-retries must be a positive number \(got NaN\)/],
      ] as const) {
        const bad = await migrate('up', '--execute', ...flags);
        expect(bad.code, bad.stderr).toBe(2);
        expect(bad.stderr).toMatch(message);
      }
      expect((await columnInfo(db, 'items', 'n'))!.type).not.toMatch(/bigint/);

      const off = await migrate('up', '--execute', '--json', '--to', '100', '--no-checksum', '--drop-old-table', '--chunk-size', '500');
      expect(off.code, off.stderr).toBe(0);
      const offRan = json(off).ran[0].statements[0];
      expect(offRan.ran).toMatch(/online engine: 3000 rows copied, \d+ changes applied, checksum not run/);
      expect(offRan.engine).toMatchObject([{ checksum: { ran: false }, backupTable: null }]);
      expect((await columnInfo(db, 'items', 'n'))!.type).toMatch(/bigint/);

      // The defaults, for contrast: checksummed, the old table kept. The new table's
      // statistics first, or the planner sees it small and runs the ALTER natively.
      await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE items' : 'ANALYZE items');
      const on = await migrate('up', '--execute', '--json');
      expect(on.code, on.stderr).toBe(0);
      const onRan = json(on).ran[0].statements[0];
      expect(onRan.engine).toMatchObject([{ checksum: { ran: true }, repairedChunks: 0 }]);
      expect(onRan.engine[0].backupTable).toBeTruthy();
      expect(await tableExists(db, onRan.engine[0].backupTable.split('.').pop())).toBe(true);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('migrate on postgres: defer-indexes and kill-blockers-after', () => {
  it('--no-defer-indexes builds the indexes first; --kill-blockers-after ends a session holding the cut-over up', async () => {
    const { url, db } = await bigTable('postgres', 'meset');
    const blocker = await openDb(url);
    const dir = tempDir();
    const migrate = (...args: string[]) =>
      cli(['migrate', ...args, '--dir', dir, '--online-threshold', '1000'], { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'info' });
    try {
      write(dir, '100_widen_n.sql', widen('postgres', 'n'));
      write(dir, '200_widen_id.sql', widen('postgres', 'id'));
      const built = /built the new table's secondary indexes/;

      const first = await migrate('up', '--execute', '--to', '100', '--no-defer-indexes');
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).not.toMatch(built);

      // An idle transaction that read the table holds a lock the cut-over's conflicts with.
      await blocker.exec('BEGIN');
      await blocker.query('SELECT count(*) FROM items');
      const second = await migrate('up', '--execute', '--json', '--cutover-lock-timeout', '2', '--kill-blockers-after', '0.5', '--cutover-retries', '2');
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toMatch(built);
      expect(second.stderr).toMatch(/--kill-blockers-after: ended a session that blocked the cut-over/);
      expect((await columnInfo(db, 'items', 'id'))!.type).toMatch(/bigint/);
      await expect(blocker.query('SELECT 1')).rejects.toThrow();
    } finally {
      await blocker.close().catch(() => undefined);
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
