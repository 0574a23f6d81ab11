// --copy-threads: a round copies several consecutive chunks at once, each on its own
// connection, and the stream is applied only between rounds. On both dialects (MySQL's
// chunks without row locks, each after its marker commit, and with --copy-row-locks;
// PostgreSQL's at the stream's snapshot and then, past --copy-snapshot-max, under row
// locks), under an open-loop workload that keeps a model
// of every acknowledged write: the migrated table must equal the model, with zero
// checksum repairs (runAlter). The first round is held until all three of its chunks
// are in their transactions at once, so a copy that ran them one after another fails
// here instead of passing by luck.

import { describe, it, expect } from 'vitest';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { runAlter, waitUntil, type TestAlterOptions } from '../support/alter.js';

const ROWS = 30_000;
const THREADS = 3;

const cases = [
  // Without row locks (each chunk after its marker commit), and with them (--copy-row-locks).
  { dialect: 'mysql', createDb: () => createMysqlDatabase('threads'), alter: 'ADD COLUMN flag INT NOT NULL DEFAULT 1', modes: [{}, { copyRowLocks: true }] },
  {
    dialect: 'postgres',
    createDb: () => createPgDatabase('threads'),
    alter: 'ALTER COLUMN user_id TYPE bigint, ADD COLUMN flag int NOT NULL DEFAULT 1',
    // At the snapshot, and under row locks from the first round.
    modes: [{}, { copySnapshotMaxSeconds: 0 }],
  },
] as const;

describe.each(testedDialects(cases))('$dialect: --copy-threads under a write workload', ({ createDb, alter, modes }) => {
  for (const mode of modes as readonly TestAlterOptions[]) {
    const rowLocks = mode.copySnapshotMaxSeconds === 0 || mode.copyRowLocks === true;
    it(`copies ${THREADS} chunks at a time and ends equal to the model${rowLocks ? ' (row locks)' : ''}`, async () => {
      const { url } = await createDb();
      const db = await openDb(url);
      try {
        await createWorkloadTable(db, 'orders');
        const model = await seedWorkloadTable(db, 'orders', ROWS);
        const workload = await startWorkload({ url, table: 'orders', model, rate: 300, connections: 6, pkChangeShare: 0.1, seed: 11 });
        let inFirstRound = 0;
        let chunks = 0;
        const result = await runAlter(url, 'orders', alter, {
          ...mode,
          chunkSize: 1000,
          copyThreads: THREADS,
          testHooks: {
            beforeChunkCommit: async () => {
              if (++chunks > THREADS) return;
              inFirstRound++;
              await waitUntil(() => inFirstRound === THREADS, `all ${THREADS} chunks of the first round in their transactions at once`, 30_000, 10);
            },
          },
        }).finally(() => workload.stop());
        expect(chunks).toBeGreaterThan(THREADS);
        expect(result.rowsCopied).toBeGreaterThanOrEqual(ROWS * 0.9);
        const cmp = await compareWithModel(url, 'orders', workload.model);
        expect(cmp.equal, formatDiffs(cmp)).toBe(true);
      } finally {
        await db.close();
      }
    });
  }
});
