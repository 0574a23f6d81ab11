// Revert after the cut-over, both dialects: a `revert` SIGKILLed in each of its phases, under a
// write workload, then run again as the CLI. It must finish: the table back on its old
// definition and equal to the model of every acknowledged write, the application without
// an error, nothing of shadowshift left but the kept tables and the revert point (which
// now leads forward again). A revert copies nothing, so its phases are the catch-up,
// the checksum, the postponed wait, the cut-over waiting for its lock and holding it,
// and the moment right after its swap (the re-run then only finishes).

import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { runAlter, waitUntil } from '../support/alter.js';
import { killFixtureAt } from '../support/kill-at.js';
import type { KillFixtureArgs, KillPoint } from '../support/kill-fixture.js';
import { startCli } from '../support/cli.js';

const points: KillPoint[] = ['catching-up', 'checksum', 'postponed', 'cutover-waiting', 'under-cutover-lock', 'after-swap'];

const cases = [
  {
    dialect: 'mysql',
    createDb: () => createMysqlDatabase('revkill'),
    alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'f', MODIFY status VARCHAR(32) NOT NULL",
    columns: 'SHOW COLUMNS FROM orders',
    status: 'status varchar(16)',
    hold: 'SELECT id FROM orders LIMIT 1',
  },
  {
    dialect: 'postgres',
    createDb: () => createPgDatabase('revkill'),
    alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'f', ALTER COLUMN status TYPE varchar(32)",
    columns: "SELECT attname AS \"Field\", format_type(atttypid, atttypmod) AS \"Type\" FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped",
    status: 'status character varying(16)',
    hold: 'LOCK TABLE orders IN ACCESS SHARE MODE',
  },
] as const;

describe.each(testedDialects(cases))('$dialect: revert SIGKILLed in each phase, then run again', ({ createDb, alter, columns: columnsSql, status, hold }) => {
  it.each(points)('killed while %s: running it again finishes the revert', async (point) => {
    const { url } = await createDb();
    const db = await openDb(url);
    const blocker = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-revkill-'));
    let blocking = false;
    let workload: Awaited<ReturnType<typeof startWorkload>> | null = null;
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', 3000);
      workload = await startWorkload({ url, table: 'orders', model, rate: 100, connections: 2, pkChangeShare: 0.1, seed: 29 });
      await runAlter(url, 'orders', alter, { revertible: true });
      const from = workload.writesAcknowledged;
      await waitUntil(() => workload!.writesAcknowledged >= from + 50, 'writes to the new table');

      if (point === 'cutover-waiting') {
        // A transaction that read the table: the cut-over's LOCK TABLES waits for it.
        await blocker.exec('BEGIN');
        await blocker.query(hold);
        blocking = true;
      }
      const postponeFlagFile = join(dir, 'postpone');
      if (point === 'postponed') writeFileSync(postponeFlagFile, '');
      const args: KillFixtureArgs = {
        url, table: 'orders', alter: '', revert: true, stopAt: point, flagFile: join(dir, 'stopped'),
        postponeFlagFile: point === 'postponed' ? postponeFlagFile : undefined,
      };
      const log = await killFixtureAt(args, `the revert to reach ${point}`);
      expect(log, 'the killed run stopped where it should').toMatch(/test: at the kill point/);

      const again = startCli(['revert', '--table', 'orders', '--execute', '--json', '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url });
      if (blocking) {
        let ended: string | null = null;
        void again.done.then((r) => (ended = `the revert exited ${r.code}: ${r.stderr.slice(-3000)}`));
        // The re-run ends the dead run's lock request first, then starts its stream.
        await waitUntil(() => {
          if (ended) throw new Error(ended);
          return /change stream resumed/.test(again.stderrSoFar());
        }, 'the revert to start its stream', 120_000);
        await blocker.exec('COMMIT');
        blocking = false;
      }
      const done = await again.done;
      expect(done.code, done.stderr.slice(-3000)).toBe(0);
      const { result } = JSON.parse(done.stdout);
      expect(result.repairedChunks, done.stderr.slice(-3000)).toBe(0);
      if (point === 'after-swap') expect(done.stderr).toMatch(/interrupted cut-over had swapped the tables/);

      await waitUntil(() => workload!.writesAcknowledged >= from + 100, 'writes to the reverted table');
      const stats = await workload.stop();
      workload = null;
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      expect(stats.anomalies, JSON.stringify(stats.anomalySamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      const columns = (await db.query<{ Field: string; Type: string }>(columnsSql)).map((c) => `${c.Field} ${c.Type}`);
      expect(columns.filter((c) => c.startsWith('flag '))).toEqual([]);
      expect(columns).toContain(status);
      const cleanup = await startCli(['cleanup', '--json'], { SHADOWSHIFT_URL: url }).done;
      expect(cleanup.code, cleanup.stderr).toBe(0);
      // What the revert point keeps (the old table; PostgreSQL: the slot and publication of the way forward again) is no leftover.
      const left = (JSON.parse(cleanup.stdout).leftovers as Array<{ kind: string; name: string; revertWindow?: unknown }>).filter((l) => l.kind !== 'backup' && !l.revertWindow);
      expect(left, JSON.stringify(left)).toEqual([]);
    } finally {
      if (blocking) await blocker.exec('ROLLBACK').catch(() => undefined);
      await workload?.stop().catch(() => undefined);
      await blocker.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
