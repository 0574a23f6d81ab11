// Autovacuum kept off the shadow while the job owns it (postgres-vacuum-guard.ts): a
// worker opens tables with SKIP_LOCKED, so VACUUM (SKIP_LOCKED) and ANALYZE (SKIP_LOCKED)
// from a test session stand for it, at every phase: during the copy, after the index
// build (which the guard must not block), while postponed, and between two cut-over
// attempts. The guard holds no snapshot, and nothing of it is left after the job. The
// shadow is analyzed during the checksum (on the guard's session), or after the swap.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { capturingLogger, newJob, waitUntil } from '../support/alter.js';
import { VACUUM_GUARD_APPLICATION_NAME } from '../../src/dialects/postgres/postgres-vacuum-guard.js';

let url: string;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  url = (await createPgDatabase('pgvacguard')).url;
  admin = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-vacguard-'));
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

/** Whether a vacuum or analyze that skips locked tables, as autovacuum's do, passes `table` by (its WARNING says so). */
async function skipped(table: string, command: 'VACUUM' | 'ANALYZE'): Promise<boolean> {
  const c = await pgConnect(url);
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  try {
    await c.query(`${command} (SKIP_LOCKED) ${table}`);
    return notices.some((m) => /^skipping .* lock not available/.test(m));
  } finally {
    await c.end();
  }
}

const statsRows = async (table: string) => (await admin.query(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = $1`, [table])).rows[0].n as number;

const guardSessions = async () =>
  (await admin.query(`SELECT backend_xmin::text AS xmin, backend_xid::text AS xid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, [VACUUM_GUARD_APPLICATION_NAME])).rows as Array<{ xmin: string | null; xid: string | null }>;

describe('autovacuum and the shadow (PostgreSQL)', () => {
  it('passes the shadow by during the copy, after the index build, while postponed and between cut-over attempts; nothing is left after', async () => {
    await admin.query('CREATE TABLE g (id int PRIMARY KEY, k int NOT NULL, v text NOT NULL)');
    await admin.query(`INSERT INTO g SELECT i, i % 97, 'v' || i FROM generate_series(1, 6000) i`);
    await admin.query('CREATE INDEX g_k_idx ON g (k)');
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    let shadow = '';
    const duringCopy: boolean[] = [];
    const { log, lines } = capturingLogger();
    const job = newJob(url, 'g', 'ADD COLUMN w int', {
      log,
      chunkSize: 1000,
      postponeCutoverFlagFile: flag,
      cutoverLockTimeoutMs: 300,
      testHooks: {
        beforeChunkCommit: async () => {
          if (duringCopy.length < 2) duringCopy.push(await skipped(job.status().shadowTable!, 'VACUUM'));
        },
      },
    });
    const blocker = await pgConnect(url);
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to postpone its cut-over');
      shadow = job.status().shadowTable!;
      expect(duringCopy).toEqual([true, true]);
      // The deferred index was built (the guard let it), and the guard was taken again after.
      expect(lines.some((l) => l.msg === "built the new table's secondary indexes")).toBe(true);
      expect(await skipped(shadow, 'VACUUM')).toBe(true);
      expect(await skipped(shadow, 'ANALYZE')).toBe(true);
      // One session, in a transaction that holds no snapshot and no transaction id: no vacuum horizon held back,
      // also after it analyzed the shadow during the checksum (ANALYZE writes catalog rows).
      expect(await guardSessions()).toEqual([{ xmin: null, xid: null }]);
      expect(await statsRows(shadow)).toBeGreaterThan(0);

      // The first cut-over attempt times out on a reader of the original; the guard is back before the next.
      await blocker.query('BEGIN');
      await blocker.query('SELECT count(*) FROM g');
      rmSync(flag);
      await waitUntil(() => lines.some((l) => l.msg === 'cut-over attempt failed; the original is as it was'), 'a failed cut-over attempt');
      await waitUntil(async () => (await guardSessions()).length === 1, 'the guard to be taken again');
      expect(await skipped(shadow, 'VACUUM')).toBe(true);
      await blocker.query('COMMIT');

      const result = await running;
      expect(result.repairedChunks).toBe(0);
      expect(await guardSessions()).toEqual([]);
      expect((await admin.query(`SELECT count(*)::int AS n FROM g WHERE w IS NULL`)).rows[0].n).toBe(6000);
      // The new table kept the statistics taken before the swap, and is vacuumed like any other now.
      expect(await statsRows('g')).toBeGreaterThan(0);
      expect(lines.some((l) => /ANALYZE failed/.test(String(l.msg)))).toBe(false);
      expect(await skipped('g', 'VACUUM')).toBe(false);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      await job.close();
    }
  });

  it('steps aside for a session that waits for the shadow: a manual ANALYZE gets it while the cut-over is postponed', async () => {
    await admin.query('CREATE TABLE w (id int PRIMARY KEY, v text NOT NULL)');
    await admin.query(`INSERT INTO w SELECT i, 'v' || i FROM generate_series(1, 2000) i`);
    const flag = join(dir, 'postpone-wait');
    writeFileSync(flag, '');
    const job = newJob(url, 'w', 'ADD COLUMN x int', { postponeCutoverFlagFile: flag });
    const dba = await pgConnect(url);
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to postpone its cut-over');
      expect(await guardSessions()).toHaveLength(1);
      // Without the guard stepping aside this waits until the cut-over, which never comes while postponed.
      await dba.query(`ANALYZE ${job.status().shadowTable!}`);
      expect(await guardSessions()).toEqual([]);
      rmSync(flag);
      expect((await running).repairedChunks).toBe(0);
    } finally {
      await dba.end();
      await job.close();
    }
  });

  it('without the checksum, the new table is analyzed after the swap', async () => {
    await admin.query('CREATE TABLE nc (id int PRIMARY KEY, v text NOT NULL)');
    await admin.query(`INSERT INTO nc SELECT i, 'v' || i FROM generate_series(1, 2000) i`);
    const job = newJob(url, 'nc', 'ADD COLUMN w int', { checksum: false });
    try {
      await job.execute(await job.prepare());
      expect(await statsRows('nc')).toBeGreaterThan(0);
    } finally {
      await job.close();
    }
  });

  it('an aborted job drops the shadow without waiting for its own guard', async () => {
    await admin.query('CREATE TABLE a (id int PRIMARY KEY, v text NOT NULL)');
    await admin.query(`INSERT INTO a SELECT i, 'v' || i FROM generate_series(1, 2000) i`);
    const flag = join(dir, 'postpone-abort');
    writeFileSync(flag, '');
    const job = newJob(url, 'a', 'ADD COLUMN w int', { postponeCutoverFlagFile: flag });
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to postpone its cut-over');
      const shadow = job.status().shadowTable!;
      expect(await guardSessions()).toHaveLength(1);
      job.controls.abort('test');
      await expect(running).rejects.toThrow();
      expect((await admin.query(`SELECT to_regclass($1) IS NULL AS gone`, [shadow])).rows[0].gone).toBe(true);
      expect(await guardSessions()).toEqual([]);
    } finally {
      await job.close();
    }
  });
});
