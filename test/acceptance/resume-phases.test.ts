// Invariant 8 at the cut-over, both dialects, under a write workload: a job SIGKILLed
// right after its swap, or under the cut-over's lock after its drain (delivered there
// every time by test/support/kill-fixture.ts), is finished by `--resume`. After the swap
// the resume finds the swap happened (the checkpoint records the phase) and only removes
// the working artefacts; under the lock it ends the stopped run's statements still on the
// server and rolls forward to a new cut-over. Either way the table equals the model, the
// checksum repaired nothing, and only the backup is left.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import type { KillFixtureArgs } from '../support/kill-fixture.js';

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('rphase'), alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'c'" },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('rphase'), alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'c'" },
];
const points = ['after-swap', 'under-cutover-lock'] as const;

describe.each(cases)('$dialect: SIGKILL in the cut-over, then --resume', ({ createDb, alter }) => {
  it.each(points)('killed %s: the resume finishes the job', async (stopAt) => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-rphase-'));
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', 10_000);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 100, connections: 2, seed: 5 });
      const flagFile = join(dir, 'stopped');
      const args: KillFixtureArgs = { url, table: 'orders', alter, stopAt, flagFile };
      await killFixtureAt(args, `the job to stop ${stopAt}`);

      const resumed = await startCli(['alter', '--table', 'orders', '--alter', alter, '--execute', '--json', '--resume', '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url }).done;
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
      const { result } = JSON.parse(resumed.stdout);
      expect(result.repairedChunks).toBe(0);
      if (stopAt === 'after-swap') expect(resumed.stderr).toMatch(/the interrupted cut-over had swapped the tables/);
      else expect(result.cutoverAttempts).toBeGreaterThan(0);

      const stats = await workload.stop();
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      expect((await db.query<{ flag: string }>('SELECT DISTINCT flag FROM orders')).map((r) => r.flag)).toEqual(['c']);
      const left = (await startCli(['cleanup', '--url', url]).done).stdout.trim().split('\n').filter((l) => l && !l.startsWith('backup '));
      expect(left, left.join('\n')).toEqual([]);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
