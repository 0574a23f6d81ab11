// The acceptance test of the engine, on both dialects: an online ALTER of a
// 200k-row table while an open-loop workload writes to it through the copy and
// the cut-over. The workload keeps a model of every acknowledged write; the
// migrated table must equal it row by row and column by column. While the
// cut-over is postponed and writes are paused, original and shadow must equal.
// The checksum runs after the copy and every second while postponed, under the
// workload, and must never have had to repair a chunk (invariant 10).

import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareTables, compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, waitUntil } from '../support/alter.js';
import type { AlterResult } from '../../src/engine/job.js';

const ROWS = 200_000;
const RATE = 300; // ops/s, 90% writes: about 270 writes/s

const cases = [
  {
    dialect: 'mysql',
    createDb: () => createMysqlDatabase('load'),
    alter: "ADD COLUMN flag VARCHAR(16) NOT NULL DEFAULT 'x', ADD INDEX idx_status (status)",
  },
  {
    dialect: 'postgres',
    createDb: () => createPgDatabase('load'),
    alter: "ALTER COLUMN user_id TYPE bigint, ADD COLUMN flag varchar(16) NOT NULL DEFAULT 'x'",
  },
] as const;

describe.each(testedDialects(cases))('$dialect: online ALTER of 200k rows under a write workload', ({ dialect, createDb, alter }) => {
  it('ends equal to the model of every acknowledged write, with no client error at cut-over', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-load-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const workload = await startWorkload({ url, table: 'orders', model, rate: RATE, connections: 8, pkChangeShare: 0.1, seed: 7 });
      // Short chunks hold their share locks briefly: fewer deadlocks for the application (see bench/RESULTS.md).
      const job = newJob(url, 'orders', alter, { postponeCutoverFlagFile: flag, chunkTimeMs: 100, checksumIntervalSeconds: 1 });
      let running: Promise<AlterResult> | null = null;
      let result: AlterResult | null = null;
      try {
        const report = await job.prepare();
        expect(report.ok, JSON.stringify(report.checks)).toBe(true);
        running = job.execute(report);
        running.catch(() => undefined);
        await waitUntil(() => ['postponed', 'failed', 'aborted'].includes(job.status().state), 'the copy to finish', 300_000, 100);
        expect(job.status().error).toBeNull();
        expect(job.status().rowsCopied).toBeGreaterThanOrEqual(ROWS * 0.9);
        expect(job.status().eventsApplied).toBeGreaterThan(0);

        // Writes stopped, stream drained: original and shadow are equal.
        await workload.pause();
        const applied = job.status().eventsApplied;
        await new Promise((r) => setTimeout(r, 500));
        await waitUntil(() => job.status().backlog === 0 && job.status().eventsApplied >= applied, 'the stream to drain', 60_000);
        await new Promise((r) => setTimeout(r, 500));
        const shadow = job.status().shadowTable!;
        const whilePostponed = await compareTables(db, 'orders', shadow);
        expect(whilePostponed.equal, formatDiffs(whilePostponed)).toBe(true);
        expect(whilePostponed.rowsA).toBe(whilePostponed.rowsB);
        workload.resume();

        // Cut over while the workload writes.
        await new Promise((r) => setTimeout(r, 1000));
        rmSync(flag);
        result = await running;
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        await job.close();
      }
      const stats = await workload.stop();
      console.log(
        `[${dialect}] workload: ${stats.ops} ops, ${stats.writesPerSec.toFixed(0)} writes/s, p99 ${stats.writeLatency.p99.toFixed(1)} ms, ` +
          `longest write stall ${stats.longestWriteStallMs.toFixed(0)} ms, slowest write ${stats.maxWriteLatencyMs.toFixed(0)} ms, errors ${stats.errors}; ` +
          `checksum ${JSON.stringify(result!.checksum)}, repaired ${result!.repairedChunks}`,
      );
      expect(result!.checksum.ran).toBe(true);
      expect(result!.repairedChunks).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5)) + '\n' + formatDiffs(final)).toBe(0);
      expect(stats.anomalies, JSON.stringify(stats.anomalySamples.slice(0, 5))).toBe(0);
      expect(final.equal, formatDiffs(final)).toBe(true);
      expect(stats.writesPerSec).toBeGreaterThanOrEqual(200);
      expect(stats.opsByKind['update-pk']).toBeGreaterThan(0);
      expect(stats.opsByKind.delete).toBeGreaterThan(0);
      const columns = (await db.query<Record<string, unknown>>(dialect === 'mysql' ? "SHOW COLUMNS FROM orders LIKE 'flag'" : "SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'flag'")).length;
      expect(columns).toBe(1);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
