// The engine's database connections are killed from the server side mid-copy
// and again mid-stream (while postponed); the job reconnects, resumes from the
// last applied position, and the final table equals the model.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, waitUntil } from '../support/alter.js';

const ROWS = 60_000;

/** Kills every session of the job: its pool, its locks and its change stream, not the test's or the workload's. */
async function killJobConnections(db: Db, dialect: 'mysql' | 'postgres', workloadIds: Set<string>): Promise<number> {
  if (dialect === 'mysql') {
    const rows = await db.query<{ id: string; command: string }>(
      'SELECT ID AS id, COMMAND AS command FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER <> \'system user\' AND COMMAND <> \'Daemon\'',
    );
    let n = 0;
    for (const r of rows) {
      if (workloadIds.has(String(r.id))) continue;
      await db.exec(`KILL ${Number(r.id)}`).catch(() => undefined);
      n++;
    }
    return n;
  }
  const rows = await db.query<{ n: string }>(
    "SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE application_name LIKE 'shadowshift%' AND pid <> pg_backend_pid()",
  );
  return Number(rows[0]!.n);
}

async function sessionIds(db: Db, dialect: 'mysql' | 'postgres'): Promise<Set<string>> {
  if (dialect === 'postgres') return new Set();
  const rows = await db.query<{ id: string }>('SELECT ID AS id FROM information_schema.PROCESSLIST');
  return new Set(rows.map((r) => String(r.id)));
}

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('drop'), alter: 'ADD COLUMN extra INT NOT NULL DEFAULT 3' },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('drop'), alter: 'ADD COLUMN extra int NOT NULL DEFAULT 3' },
];

describe.each(cases)('$dialect: connections dropped mid-copy and mid-stream', ({ dialect, createDb, alter }) => {
  it('recovers and ends equal to the model', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-drop-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const before = await sessionIds(db, dialect);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 150, connections: 4, seed: 5 });
      await new Promise((r) => setTimeout(r, 300));
      // MySQL has no application name: spare the workload's and the test's sessions by id.
      const spared = new Set([...before, ...(await sessionIds(db, dialect))]);
      const job = newJob(url, 'orders', alter, { chunkSize: 300, postponeCutoverFlagFile: flag });
      try {
        const report = await job.prepare();
        const running = job.execute(report);
        running.catch(() => undefined);
        await waitUntil(() => job.status().rowsCopied >= ROWS * 0.3 || job.status().state === 'failed', 'a third of the copy', 120_000, 10);
        expect(await killJobConnections(db, dialect, spared)).toBeGreaterThan(0);
        await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the copy to finish after the drop', 120_000);
        expect(job.status().error).toBeNull();
        const applied = job.status().eventsApplied;
        expect(await killJobConnections(db, dialect, spared)).toBeGreaterThan(0);
        await waitUntil(() => job.status().eventsApplied > applied + 20 || job.status().state === 'failed', 'the stream to apply again after the drop', 60_000);
        expect(job.status().error).toBeNull();
        rmSync(flag);
        await running;
      } finally {
        await job.close();
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
