// The planner sends a rewriting ALTER of a table above --online-threshold
// through the online engine: `migrate plan` says so beforehand, and `migrate up`
// runs it while an open-loop write workload keeps writing; the table ends equal
// to the model of every acknowledged write, with the new column type, and the
// engine job's result (in `up --json`) shows no chunk repaired by the checksum.

import { describe, it, expect } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { cli, columnInfo, json, newDatabase, ROOT, tempDir, write, type Dialect } from './helpers.js';

const ROWS = 60_000;
const dialectBuilt = (d: Dialect) => existsSync(join(ROOT, 'src/dialects', d, `${d}-dialect.ts`));

describe.each(['mysql', 'postgres'] as const)('%s: a type change of a big table goes through the engine', (dialect) => {
  // Reason: runs only for a dialect whose online engine is built (both are; kept for a new dialect).
  it.skipIf(!dialectBuilt(dialect))('plan says online beforehand; up runs it under a write workload with no lost write', async () => {
    const { url, db } = await newDatabase(dialect, 'meng');
    const dir = tempDir();
    try {
      await createWorkloadTable(url, 'orders');
      const model = await seedWorkloadTable(url, 'orders', ROWS);
      await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE orders' : 'ANALYZE orders');
      write(
        dir,
        '100_widen_user_id.sql',
        dialect === 'mysql' ? 'ALTER TABLE orders MODIFY user_id BIGINT NOT NULL;\n' : 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;\n',
      );
      const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--online-threshold', '20000'], { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'warn' });

      const plan = await migrate('plan', '--json');
      expect(plan.code, plan.stderr).toBe(0);
      const st = json(plan).up[0].phases[0].statements[0];
      expect(st.class).toBe('online');
      expect(st.how).toMatch(/online engine/);
      expect(st.estimatedRows).toBeGreaterThan(20_000);
      const below = json(await cli(['migrate', 'plan', '--json', '--dir', dir, '--online-threshold', '1000000'], { SHADOWSHIFT_URL: url }));
      expect(below.up[0].phases[0].statements[0].class).toBe('blocking');

      const workload = await startWorkload({ url, table: 'orders', model, rate: 150, connections: 4, seed: 7 });
      let stats;
      let up;
      try {
        await new Promise((r) => setTimeout(r, 500));
        up = await migrate('up', '--execute', '--json');
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        stats = await workload.stop();
      }
      expect(up.code, up.stderr).toBe(0);
      const ran = json(up).ran[0].statements[0];
      expect(ran.ran).toMatch(/online engine: \d+ rows copied, \d+ changes applied, checksum: \d+ chunk\(s\), none repaired/);
      expect(ran.engine).toMatchObject([{ repairedChunks: 0, checksum: { ran: true, runs: 1 } }]);
      expect(stats.okOps).toBeGreaterThan(100);
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 3))).toBe(0);
      expect(stats.anomalies).toBe(0);
      expect((await columnInfo(db, 'orders', 'user_id'))!.type).toMatch(/bigint/);
      const cmp = await compareWithModel(url, 'orders', model);
      expect(cmp.diffCount, formatDiffs(cmp)).toBe(0);
      const status = json(await migrate('status', '--json'));
      expect(status.migrations[0].state).toBe('backfilled');
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
