// A vacuum or analyze of the shadow (autovacuum runs one soon after the copy fills it)
// holds SHARE UPDATE EXCLUSIVE, which the swap's ACCESS EXCLUSIVE waits for. Waited for
// under the original's lock, it stalled every application write: an autovacuum worker
// is cancelled only after deadlock_timeout (1 s), a manual VACUUM not at all (seen in
// the benchmark: the swap's COMMIT step took 1006 ms, twice). The cut-over must wait for
// it before it locks the original, so the application keeps writing meanwhile.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';

let url: string;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  url = (await createPgDatabase('pgcutvac')).url;
  admin = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-cutvac-'));
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

describe('cut-over and a vacuum of the shadow (PostgreSQL)', () => {
  it('waits for it before locking the original: application writes go on meanwhile', async () => {
    await admin.query('CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)');
    await admin.query(`INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g`);
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    // Long enough that a cut-over holding the original while it waits is still holding it when the application writes.
    const job = newJob(url, 't', 'ADD COLUMN w int', { postponeCutoverFlagFile: flag, cutoverLockTimeoutMs: 15_000 });
    const vacuum = await pgConnect(url);
    const app = await pgConnect(url);
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to postpone its cut-over');
      const shadow = job.status().shadowTable!;
      await vacuum.query('BEGIN');
      // What a manual VACUUM or ANALYZE holds. It queues behind the job's vacuum guard,
      // which steps aside for it (postgres-vacuum-guard.ts).
      await vacuum.query(`LOCK TABLE ${shadow} IN SHARE UPDATE EXCLUSIVE MODE`);
      rmSync(flag);
      await waitUntil(
        async () => (await admin.query(`SELECT 1 FROM pg_locks WHERE relation = $1::regclass AND NOT granted`, [shadow])).rowCount! > 0,
        'the cut-over to wait for the shadow',
      );
      // The cut-over waits; the original is not locked, and the application writes.
      await app.query(`SET lock_timeout = '2s'`);
      await app.query(`INSERT INTO t VALUES (5000, 'during the wait')`);
      await app.query(`UPDATE t SET v = 'updated during the wait' WHERE id = 7`);
      expect((await admin.query(`SELECT 1 FROM pg_locks WHERE relation = 't'::regclass AND mode = 'AccessExclusiveLock'`)).rowCount).toBe(0);
      await vacuum.query('COMMIT');
      const result = await running;
      expect(result.repairedChunks).toBe(0);
      expect((await admin.query(`SELECT v FROM t WHERE id IN (5000, 7) ORDER BY id`)).rows.map((r) => r.v)).toEqual(['updated during the wait', 'during the wait']);
      expect((await admin.query(`SELECT count(*)::int AS n FROM t`)).rows[0].n).toBe(2001);
    } finally {
      await vacuum.query('ROLLBACK').catch(() => undefined);
      await vacuum.end();
      await app.end();
      await job.close();
    }
  });
});
