// A session that reads the shadow in an open transaction while the cut-over runs (a
// DBA's SELECT COUNT(*), a GUI with autocommit off, a consistent dump) holds a metadata
// lock on it. RENAME takes its locks in name order; when the shadow's name sorted before
// the table's, the RENAME waited on the shadow while its processlist state still read
// "Waiting for table metadata lock", the cut-over took that as "queued on the table" and
// unlocked, and the application's writes ran into the old table: 281-287 rows lost per
// run, exit 0. Now every name of the RENAME sorts after the table's, so its first wait is
// on the table itself, and (where metadata_lock_info shows it) an attempt with a reader
// on the shadow is abandoned before the RENAME is sent. Either way no write is lost.
//
// The reader is let go once the failure mode has had its chance: when a RENAME has been
// seen waiting and 20 more application writes have been acknowledged after that (writes
// that, with the old names, went into the old table), or when an attempt has failed.

import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { createDatabaseOn, openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { newJob, waitUntil } from '../support/alter.js';
import { startMariaDb, type RunningServer } from '../support/servers.js';

const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

/** A server of its own without the metadata_lock_info plugin: the proof must hold without it. */
async function databaseWithoutLockInfo(): Promise<string> {
  const server = await startMariaDb();
  servers.push(server);
  const conn = await mysqlConnect(server.adminUrl(''));
  await conn.query("UNINSTALL SONAME 'metadata_lock_info'");
  await conn.end();
  return (await createDatabaseOn(server.adminUrl(''), 'reader')).url;
}

const cases = [
  { server: 'with metadata_lock_info', database: async () => (await createMysqlDatabase('reader')).url },
  { server: 'without metadata_lock_info', database: databaseWithoutLockInfo },
];

describe.each(cases)('cut-over while a session reads the shadow ($server)', ({ database }) => {
  it('loses no write: the final table equals the model of every acknowledged write', async () => {
    const url = await database();
    const db = await openDb(url);
    const admin = await mysqlConnect(url);
    const reader = await mysqlConnect(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-reader-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', 20_000);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 200, connections: 8, pkChangeShare: 0.1, seed: 11 });
      // The checksum is off: it would repair what the cut-over lost and hide it; the model is the oracle.
      const job = newJob(url, 'orders', 'ADD COLUMN flag TINYINT NOT NULL DEFAULT 0', {
        postponeCutoverFlagFile: flag,
        checksum: false,
        cutoverLockTimeoutMs: 2000,
        cutoverRetries: 10,
      });
      let running: Promise<unknown> | null = null;
      try {
        const report = await job.prepare();
        expect(report.ok, JSON.stringify(report.checks)).toBe(true);
        running = job.execute(report);
        running.catch(() => undefined);
        await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the copy to finish', 120_000);
        expect(job.status().error).toBeNull();

        await reader.query('BEGIN');
        await reader.query(`SELECT COUNT(*) FROM \`${job.status().shadowTable!}\``);
        rmSync(flag);

        let writesWhenRenameWaited: number | null = null;
        await waitUntil(async () => {
          const s = job.status();
          if (s.cutoverAttempts >= 2 || ['done', 'failed'].includes(s.state)) return true;
          if (writesWhenRenameWaited === null) {
            const [pl] = (await admin.query(
              // This job's RENAME only: other test files swap tables on the same server.
              "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'RENAME TABLE%' AND STATE LIKE 'Waiting for table metadata lock'",
            )) as unknown as [RowDataPacket[]];
            if (Number(pl[0]!.n) > 0) writesWhenRenameWaited = workload.writesAcknowledged;
            return false;
          }
          return workload.writesAcknowledged >= writesWhenRenameWaited + 20;
        }, 'a cut-over attempt to meet the reader', 60_000, 10);
        await reader.query('ROLLBACK');

        await running;
        expect(job.status().state).toBe('done');
        // The reader cost an attempt (abandoned before the RENAME, or the RENAME timed out behind it), not a write.
        expect(job.status().cutoverAttempts).toBeGreaterThanOrEqual(2);
      } finally {
        await job.close();
      }
      const stats = await workload.stop();
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      expect(stats.anomalies, JSON.stringify(stats.anomalySamples.slice(0, 5))).toBe(0);
    } finally {
      await reader.end().catch(() => undefined);
      await admin.end();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
