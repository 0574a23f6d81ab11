// `migrate down` of a migration without a down phase whose ALTER went through the engine
// with --revertible: the engine's revert takes the table back, keeping every write made
// since (here: rows inserted, updated and deleted after `up`), and the history records it
// as rolled back. A migration whose expand cannot be reverted (an ALTER that ran in place,
// a statement other than ALTER TABLE) is refused, naming the statement, with nothing changed.

import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { createWorkloadTable, seedWorkloadTable } from '../support/workload/index.js';
import { cli, columnInfo, json, newDatabase, tempDir, write } from './helpers.js';

const cases = [
  { dialect: 'mysql', widen: 'ALTER TABLE orders MODIFY user_id BIGINT NOT NULL;\n', index: 'CREATE INDEX orders_status_idx ON orders (status);\n', narrow: /^int/ },
  { dialect: 'postgres', widen: 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;\n', index: 'CREATE INDEX orders_status_idx ON orders (status);\n', narrow: /^integer/ },
] as const;

describe.each(cases)('$dialect: migrate down reverts an engine ALTER', ({ dialect, widen, index, narrow }) => {
  it('rolls back a migration without a down phase through the revert, keeping the writes since; refuses one it cannot revert', async () => {
    const { url, db } = await newDatabase(dialect, 'mrev');
    const dir = tempDir();
    try {
      await createWorkloadTable(url, 'orders');
      await seedWorkloadTable(url, 'orders', 2000);
      await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE orders' : 'ANALYZE orders');
      write(dir, '100_widen_user_id.sql', widen);
      const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--online-threshold', '100'], { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'warn' });

      const up = await migrate('up', '--execute', '--json', '--revertible');
      expect(up.code, up.stderr).toBe(0);
      expect(json(up).ran[0].statements[0].ran).toMatch(/online engine/);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(/bigint/);
      // Written to the new table after `up`.
      await db.exec("INSERT INTO orders (id, user_id, amount, status, note, created_at, payload) VALUES (900001, 7, 1.50, 'new', 'after up', '2026-01-01 00:00:00', 'ab')");
      await db.exec("UPDATE orders SET note = 'changed after up' WHERE id = 5");
      await db.exec('DELETE FROM orders WHERE id = 6');
      // As text: user_id reads as a number from an int column, as a string from a bigint one.
      const rows = async () => (await db.query<Record<string, unknown>>('SELECT id, user_id, status, note FROM orders ORDER BY id')).map((r) => Object.values(r).map((v) => (v === null ? null : String(v))));
      const before = await rows();

      const plan = await migrate('down');
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(/100_widen_user_id\.sql: no down phase; its ALTERs are undone by reverting orders through the engine/);
      const down = await migrate('down', '--execute', '--json');
      expect(down.code, down.stderr).toBe(0);
      const ran = json(down).ran[0].statements[0];
      expect(ran.how).toBe('shadowshift revert --table orders');
      expect(ran.engine).toMatchObject([{ repairedChunks: 0 }]);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(narrow);
      expect(await rows()).toEqual(before);
      const status = json(await migrate('status', '--json'));
      expect(status.migrations[0].state).toBe('rolled back');

      // An expand the engine did not run with --revertible cannot be reverted: refused, nothing changed.
      rmSync(`${dir}/100_widen_user_id.sql`);
      write(dir, '200_status_index.sql', index);
      expect((await migrate('up', '--execute')).code).toBe(0);
      const refused = await migrate('down', '--execute');
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/200_status_index\.sql has no down phase, and it cannot be rolled back by reverting its ALTERs: statement 1 \(line 1\) is not an ALTER TABLE/);
      expect(await rows()).toEqual(before);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('skips a table reverted already (by hand, or by a down that failed on a later table) instead of reverting it again, which would go forward', async () => {
    const { url, db } = await newDatabase(dialect, 'mrev2');
    const dir = tempDir();
    try {
      for (const t of ['orders', 'orders2']) {
        await createWorkloadTable(url, t);
        await seedWorkloadTable(url, t, 500);
        await db.exec(dialect === 'mysql' ? `ANALYZE TABLE ${t}` : `ANALYZE ${t}`);
      }
      write(dir, '100_widen_both.sql', widen + widen.replace('orders', 'orders2'));
      const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--online-threshold', '100'], { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'warn' });
      const up = await migrate('up', '--execute', '--revertible');
      expect(up.code, up.stderr).toBe(0);
      // orders2 reverted by hand first: the down must skip it, not revert it again (forward).
      const byHand = await cli(['revert', '--table', 'orders2', '--execute'], { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'warn' });
      expect(byHand.code, byHand.stderr).toBe(0);
      // orders is reverted second (last ALTER first): a value its old column cannot hold fails it there.
      await db.exec('UPDATE orders SET user_id = 5000000000 WHERE id = 1');
      const failed = await migrate('down', '--execute');
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toMatch(/shadowshift revert --table orders\n/);
      expect((await columnInfo(db, 'orders2', 'user_id'))!.type).toMatch(narrow);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(/bigint/);

      await db.exec('UPDATE orders SET user_id = 1 WHERE id = 1');
      const down = await migrate('down', '--execute', '--json');
      expect(down.code, down.stderr).toBe(0);
      // It goes on where the failed run stopped: orders.
      const ran = json(down).ran[0].statements.map((x: { ran: string }) => x.ran);
      expect(ran).toEqual([expect.stringMatching(/^revert through the engine/)]);
      expect((await columnInfo(db, 'orders2', 'user_id'))!.type).toMatch(narrow);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(narrow);
      expect(json(await migrate('status', '--json')).migrations[0].state).toBe('rolled back');
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
