// Revert after the cut-over (engine/revert-point.ts), on both dialects: an ALTER --revertible under
// a write workload, the workload writing on through the swap, then `revert` while it
// still writes, then the revert reverted (forward again). Every write of the workload is
// acknowledged only once committed, and its model is the oracle: after each step the
// table must equal it, with the definition of that step, without any client error and
// without a write stall as long as the cut-over's lock timeout. The checksums must have
// repaired nothing.

import { describe, expect, it } from 'vitest';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload, type Workload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, type TestAlterOptions } from '../support/alter.js';
import { waitUntil } from '../support/alter.js';
import type { AlterResult } from '../../src/engine/job.js';

const ROWS = 20_000;
const LOCK_TIMEOUT_MS = 3000;

const cases = [
  {
    dialect: 'mysql',
    createDb: () => createMysqlDatabase('revert'),
    alter: "ADD COLUMN flag VARCHAR(16) NOT NULL DEFAULT 'x', MODIFY user_id BIGINT NOT NULL, MODIFY status VARCHAR(32) NOT NULL, ADD INDEX idx_status (status)",
    forward: { flag: 'varchar(16)', user_id: 'bigint(20)', status: 'varchar(32)' },
    oldTables: "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'orders\\_ssold\\_%'",
    points: 'SELECT table_name AS t FROM _shadowshift_reverts',
  },
  {
    dialect: 'postgres',
    createDb: () => createPgDatabase('revert'),
    alter: "ADD COLUMN flag varchar(16) NOT NULL DEFAULT 'x', ALTER COLUMN user_id TYPE bigint, ALTER COLUMN status TYPE varchar(32)",
    forward: { flag: 'character varying(16)', user_id: 'bigint', status: 'character varying(32)' },
    oldTables: "SELECT relname AS t FROM pg_class WHERE relkind = 'r' AND relname LIKE '\\_ss\\_%\\_old\\_orders'",
    points: 'SELECT table_name AS t FROM _ss_reverts',
  },
] as const;

async function run(url: string, alter: string, options: TestAlterOptions): Promise<AlterResult> {
  const job = newJob(url, 'orders', alter, { cutoverLockTimeoutMs: LOCK_TIMEOUT_MS, chunkTimeMs: 100, ...options });
  try {
    const report = await job.prepare();
    expect(report.ok, JSON.stringify(report.checks.filter((c) => !c.ok))).toBe(true);
    const result = await job.execute(report);
    expect(result.repairedChunks).toBe(0);
    return result;
  } finally {
    await job.close();
  }
}

/** Lets the workload acknowledge `n` more writes: waits for the condition, not for a time. */
async function writesGoOn(workload: Workload, n: number): Promise<void> {
  const from = workload.writesAcknowledged;
  await waitUntil(() => workload.writesAcknowledged >= from + n, `${n} more writes`, 120_000);
}

async function definition(db: Db): Promise<Record<string, string>> {
  if (db.dialect === 'mysql') {
    const rows = await db.query<{ Field: string; Type: string }>('SHOW COLUMNS FROM orders');
    return Object.fromEntries(rows.map((r) => [r.Field, r.Type]));
  }
  const rows = await db.query<{ name: string; type: string }>("SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped");
  return Object.fromEntries(rows.map((r) => [r.name, r.type]));
}

describe.each(testedDialects(cases))('$dialect: revert after the cut-over', ({ dialect, createDb, alter, forward: forwardColumns, oldTables, points: pointsSql }) => {
  it('undoes a finished ALTER under a write workload without losing a write, and the revert can be undone too', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const before = await definition(db);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 300, connections: 8, pkChangeShare: 0.1, seed: 11 });
      let back: AlterResult;
      let again: AlterResult;
      try {
        const forward = await run(url, alter, { revertible: true });
        expect(forward.backupTable).toMatch(dialect === 'mysql' ? /^orders_ssold_/ : /^_ss_\w+_old_orders$/);
        await writesGoOn(workload, 500);

        back = await run(url, '', { revert: true });
        expect(back.eventsApplied).toBeGreaterThan(0);
        await writesGoOn(workload, 300);
        await workload.pause();
        const reverted = await compareWithModel(db, 'orders', model);
        expect(reverted.equal, formatDiffs(reverted)).toBe(true);
        expect(await definition(db)).toEqual(before);
        workload.resume();

        await writesGoOn(workload, 300);
        again = await run(url, '', { revert: true });
        await writesGoOn(workload, 300);
      } catch (err) {
        await workload.stop();
        throw err;
      }
      const stats = await workload.stop();
      console.log(
        `[${dialect} revert] workload: ${stats.ops} ops, ${stats.writesPerSec.toFixed(0)} writes/s, p99 ${stats.writeLatency.p99.toFixed(1)} ms, ` +
          `longest write stall ${stats.longestWriteStallMs.toFixed(0)} ms, errors ${stats.errors}; applied ${back!.eventsApplied} back, ${again!.eventsApplied} forward again`,
      );
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      expect(stats.anomalies, JSON.stringify(stats.anomalySamples.slice(0, 5))).toBe(0);
      expect(stats.longestWriteStallMs).toBeLessThan(LOCK_TIMEOUT_MS);
      expect(stats.opsByKind['update-pk']).toBeGreaterThan(0);
      expect(stats.opsByKind.delete).toBeGreaterThan(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      const forwardAgain = await definition(db);
      expect(forwardAgain).toMatchObject(forwardColumns);
      // Each step took the kept table back and kept the one it replaced: one old table is left, and the revert point leads back to it.
      const tables = (await db.query<{ t: string }>(oldTables)).map((r) => r.t);
      expect(tables).toEqual([again!.backupTable]);
      const points = await db.query<{ t: string }>(pointsSql);
      expect(points.map((p) => p.t)).toEqual(['orders']);
    } finally {
      await db.close();
    }
  }, 600_000);
});
