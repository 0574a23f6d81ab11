// `migrate up` runs a rewriting ALTER of a big table through the online engine, and every
// engine job checkpoints. A `migrate up` SIGKILLed mid-copy leaves the job's checkpoint
// (and shadow, slot); running `migrate up` again continues that job from its checkpoint
// (same ALTER) instead of being refused at preflight with "use --resume", which migrate
// has no flag for. Under a write workload, the table ends equal to the model, the copy
// resumed after the checkpoint's watermark, the checksum repaired nothing, and nothing
// of the job is left but the backup.

import { describe, it, expect } from 'vitest';
import { rmSync } from 'node:fs';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { waitUntil } from '../support/alter.js';
import { cli, columnInfo, json, newDatabase, startCli, tempDir, write } from './helpers.js';

const ROWS = 60_000;

describe.each(['mysql', 'postgres'] as const)('%s: migrate up killed mid-copy, then run again', (dialect) => {
  it('the rerun continues the engine job from its checkpoint and the table equals the model', async () => {
    const { url, db } = await newDatabase(dialect, 'mres');
    const dir = tempDir();
    let workload: Awaited<ReturnType<typeof startWorkload>> | null = null;
    try {
      await createWorkloadTable(url, 'orders');
      const model = await seedWorkloadTable(url, 'orders', ROWS);
      await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE orders' : 'ANALYZE orders');
      write(dir, '100_widen_user_id.sql', dialect === 'mysql' ? 'ALTER TABLE orders MODIFY user_id BIGINT NOT NULL;\n' : 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;\n');
      // Fixed small chunks: MariaDB copies these 60k rows in adaptive chunks within 0.4 s (its keys built after the copy),
      // too fast for a checkpoint to be seen mid-copy (seen in CI: the first run finished before the kill).
      const up = ['migrate', 'up', '--execute', '--json', '--dir', dir, '--online-threshold', '20000', '--chunk-size', '200', '--checkpoint-interval', '0.3'];
      const env = { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'info' };
      workload = await startWorkload({ url, table: 'orders', model, rate: 100, connections: 2, seed: 31 });

      const first = startCli(up, env);
      let exited: string | null = null;
      let stderr = '';
      first.child.stderr!.on('data', (d) => (stderr += d));
      void first.done.then((r) => (exited = `the first run exited ${r.code} before the kill: ${r.stderr.slice(-3000)}`));
      const checkpoints = dialect === 'mysql' ? '_shadowshift_checkpoints' : '_ss_checkpoints';
      // Mid-copy: a checkpoint that records rows copied and a watermark short of the ceiling.
      let saved: { rowsCopied: number; watermark: string | null; ceiling: string | null; phase?: string } | null = null;
      await waitUntil(async () => {
        if (exited) throw new Error(exited);
        const rows = await db.query<{ checkpoint: string }>(`SELECT checkpoint FROM ${checkpoints}`).catch(() => []);
        saved = rows[0] ? JSON.parse(String(rows[0].checkpoint)) : null;
        return saved !== null && saved.rowsCopied > 0 && saved.phase === 'copying' && saved.watermark !== saved.ceiling;
      }, 'a checkpoint in the middle of the copy', 120_000, 20);
      first.child.kill('SIGKILL');
      const killed = await first.done;
      expect(killed.code, stderr.slice(-2000)).toBeNull();

      const again = await cli(up, env);
      expect(again.code, again.stderr.slice(-3000)).toBe(0);
      expect(again.stderr).toMatch(/an earlier run of this ALTER left a checkpoint: continuing it/);
      const from = Number(/"rowsCopied":(\d+)[^\n]*resuming the copy after the checkpoint/.exec(again.stderr)?.[1] ?? -1);
      expect(from, again.stderr.slice(-3000)).toBeGreaterThan(0);
      const ran = json(again).ran[0].statements[0];
      expect(ran.engine).toMatchObject([{ repairedChunks: 0, checksum: { ran: true } }]);

      const stats = await workload.stop();
      workload = null;
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      expect(stats.anomalies).toBe(0);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(/bigint/);
      const cmp = await compareWithModel(url, 'orders', model);
      expect(cmp.diffCount, formatDiffs(cmp)).toBe(0);
      const status = json(await cli(['migrate', 'status', '--json', '--dir', dir], { SHADOWSHIFT_URL: url }));
      expect(status.migrations[0].state).toBe('backfilled');
      const cleanup = await cli(['cleanup', '--json'], { SHADOWSHIFT_URL: url });
      const left = (json(cleanup).leftovers as Array<{ kind: string; name: string }>).filter((l) => l.kind !== 'backup');
      expect(left, JSON.stringify(left)).toEqual([]);
    } finally {
      await workload?.stop().catch(() => undefined);
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
