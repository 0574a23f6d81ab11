// The engine's database connections are killed from the server side mid-copy
// and again mid-stream (while postponed); the job reconnects, resumes from the
// last applied position, and the final table equals the model, with no chunk
// repaired by the checksum.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, dropAfterFile, testedDialects } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, waitUntil } from '../support/alter.js';

const ROWS = 60_000;

/**
 * Kills every session of this job — its pool, its locks, its change stream — and
 * nothing else: not the test's, not the workload's, not other test files' jobs.
 * On MySQL the job runs as a user of its own; on PostgreSQL its sessions carry
 * the application name shadowshift and this database.
 */
async function killJobConnections(db: Db, dialect: 'mysql' | 'postgres', jobUser: string): Promise<number> {
  if (dialect === 'mysql') {
    const rows = await db.query<{ id: string }>('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ?', [jobUser]);
    for (const r of rows) await db.exec(`KILL ${Number(r.id)}`).catch(() => undefined);
    return rows.length;
  }
  const rows = await db.query<{ n: string }>(
    "SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE application_name LIKE 'shadowshift%' AND datname = current_database() AND pid <> pg_backend_pid()",
  );
  return Number(rows[0]!.n);
}

/** MySQL: a user only this job connects as, so its sessions can be told apart. */
async function jobUrl(db: Db, dialect: 'mysql' | 'postgres', url: string): Promise<{ url: string; user: string }> {
  if (dialect === 'postgres') return { url, user: '' };
  const user = `job_${Date.now().toString(36)}`;
  await db.exec(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
  dropAfterFile('mysql', `'${user}'@'%'`);
  await db.exec(`GRANT ALL PRIVILEGES ON *.* TO '${user}'@'%'`);
  const u = new URL(url);
  u.username = user;
  u.password = 'pw';
  return { url: u.toString(), user };
}

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('drop'), alter: 'ADD COLUMN extra INT NOT NULL DEFAULT 3' },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('drop'), alter: 'ADD COLUMN extra int NOT NULL DEFAULT 3' },
];

describe.each(testedDialects(cases))('$dialect: connections dropped mid-copy and mid-stream', ({ dialect, createDb, alter }) => {
  it('recovers and ends equal to the model', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-drop-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const job = await jobUrl(db, dialect, url);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 150, connections: 4, seed: 5 });
      const alterJob = newJob(job.url, 'orders', alter, { chunkSize: 300, postponeCutoverFlagFile: flag });
      try {
        const report = await alterJob.prepare();
        const running = alterJob.execute(report);
        running.catch(() => undefined);
        await waitUntil(() => alterJob.status().rowsCopied >= ROWS * 0.3 || alterJob.status().state === 'failed', 'a third of the copy', 120_000, 10);
        expect(await killJobConnections(db, dialect, job.user)).toBeGreaterThan(0);
        await waitUntil(() => alterJob.status().state === 'postponed' || alterJob.status().state === 'failed', 'the copy to finish after the drop', 120_000);
        expect(alterJob.status().error).toBeNull();
        const applied = alterJob.status().eventsApplied;
        expect(await killJobConnections(db, dialect, job.user)).toBeGreaterThan(0);
        await waitUntil(() => alterJob.status().eventsApplied > applied + 20 || alterJob.status().state === 'failed', 'the stream to apply again after the drop', 60_000);
        expect(alterJob.status().error).toBeNull();
        rmSync(flag);
        const result = await running;
        expect(result.checksum.ran).toBe(true);
        expect(result.repairedChunks).toBe(0);
      } finally {
        await alterJob.close();
      }
      const stats = await workload.stop();
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
