// Invariant 8, both dialects, under a write workload: a resumed job is where its
// checkpoint says from its first moment. Its status counts on from the checkpoint's
// rows (not from 0), and when it fails before its copy loop runs (here: while its
// stream starts) the checkpoint it keeps still holds the first run's watermark, key
// ceiling, rows and stream position — not "nothing copied, empty table, end of the
// log", which made the next resume skip the copy. The final table equals the model
// with zero repaired chunks.

import { describe, it, expect } from 'vitest';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, runAlter } from '../support/alter.js';
import type { Checkpoint } from '../../src/dialects/dialect.js';

const ROWS = 20_000;

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('rprog'), table: '_shadowshift_checkpoints', alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'p'" },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('rprog'), table: '_ss_checkpoints', alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'p'" },
];

async function checkpointOf(db: Db, table: string): Promise<Checkpoint> {
  const rows = await db.query<{ checkpoint: string }>(`SELECT checkpoint FROM ${table}`);
  expect(rows).toHaveLength(1);
  return JSON.parse(String(rows[0]!.checkpoint)) as Checkpoint;
}

describe.each(cases)('$dialect: a resumed job takes its progress from the checkpoint', ({ createDb, table, alter }) => {
  it('counts on from the checkpoint and keeps it intact when it fails before copying', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 100, connections: 2, seed: 8 });

      // Run 1 fails in its eighth chunk, keeping its state.
      let chunks = 0;
      await expect(
        runAlter(url, 'orders', alter, {
          chunkSize: 500,
          resumable: true,
          checkpointIntervalSeconds: 0,
          testHooks: {
            beforeChunkCommit: async () => {
              if (++chunks === 8) throw new Error('simulated crash in the copy');
            },
          },
        }),
      ).rejects.toThrow(/simulated crash in the copy/);
      const first = await checkpointOf(db, table);
      expect(first.rowsCopied).toBeGreaterThan(0);
      expect(first.watermark).not.toBeNull();
      expect(first.ceiling).not.toBeNull();

      // Run 2 resumes and fails while its stream starts, before its copy loop.
      let seenAtStart = -1;
      const second = newJob(url, 'orders', alter, {
        chunkSize: 500,
        resume: true,
        testHooks: {
          beforeStreamStart: async () => {
            seenAtStart = second.status().rowsCopied;
            throw new Error('simulated crash while the stream starts');
          },
        },
      });
      try {
        await expect(second.execute(await second.prepare())).rejects.toThrow(/while the stream starts/);
      } finally {
        await second.close();
      }
      expect(seenAtStart, 'rowsCopied of a resumed job before it copies').toBe(first.rowsCopied);
      const kept = await checkpointOf(db, table);
      expect({ watermark: kept.watermark, ceiling: kept.ceiling, rowsCopied: kept.rowsCopied, streamPosition: kept.streamPosition }).toEqual({
        watermark: first.watermark,
        ceiling: first.ceiling,
        rowsCopied: first.rowsCopied,
        streamPosition: first.streamPosition,
      });

      // Run 3 resumes and finishes; its counts go on from the checkpoint.
      let atFirstChunk = -1;
      const third = newJob(url, 'orders', alter, {
        chunkSize: 500,
        resume: true,
        // Told before the chunk's rows are added: the count the resumed copy starts from.
        observer: { chunkCopied: () => void (atFirstChunk < 0 && (atFirstChunk = third.status().rowsCopied)) },
      });
      let result;
      try {
        result = await third.execute(await third.prepare());
      } finally {
        await third.close();
      }
      expect(atFirstChunk).toBe(first.rowsCopied);
      expect(result.rowsCopied).toBeGreaterThan(first.rowsCopied);
      expect(result).toMatchObject({ repairedChunks: 0, checksum: { ran: true } });

      const stats = await workload.stop();
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      expect(await db.query(`SELECT 1 FROM ${table}`).catch(() => [])).toEqual([]);
    } finally {
      await db.close();
    }
  }, 300_000);
});
