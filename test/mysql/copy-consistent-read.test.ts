// Invariant 3 on MySQL/MariaDB: a chunk must see every transaction whose binlog events the
// job has already applied. The hardest case is a DELETE whose binlog events are written,
// streamed and applied to the shadow (a no-op there: the row is not copied yet) while its
// InnoDB commit is still not visible (semi-sync AFTER_SYNC waiting for an ACK). A chunk
// that then reads the row from its older version copies it back, and the deleted row stays
// in the new table for good, with the checksum (if on) repairing it silently at best.
//
// Without row locks (the default) the chunk commits a marker first, which the server makes
// visible only after the DELETE (commits in binlog order), so the chunk reads after it.
// With --copy-row-locks the chunk's LOCK IN SHARE MODE waits for the DELETE's row lock.
// The release of the held commit waits for whichever of those the job does, or for the
// chunk to reach its commit without either: the case that loses the row.
//
// The commit is held with semi-sync (test/support/held-commit.ts), which is global: this
// file runs its own throwaway server.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { capturingLogger, newJob, waitUntil } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';
import { LOCK_POLL_MS, SEMI_SYNC_WAIT, holdCommits, restoreSemiSync, semiSyncSettings, waitingOnLocksOf } from '../support/held-commit.js';


let server: RunningServer;
let admin: Connection;
let dir: string;
let saved: RowDataPacket[] = [];

beforeAll(async () => {
  server = await startMariaDb();
  admin = await mysqlConnect(server.adminUrl('mysql'));
  saved = await semiSyncSettings(admin);
  dir = mkdtempSync(join(tmpdir(), 'ss-consistent-'));
});

afterAll(async () => {
  await admin?.end();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Sessions other than `except` whose commit waits, with their statements: for the ACK
 * itself, or in the group commit queue behind the held commit ('Commit': MariaDB makes
 * later commits visible only after it).
 */
async function commitsWaiting(except: number): Promise<string[]> {
  const [r] = await admin.query<RowDataPacket[]>("SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE STATE IN (?, 'Commit') AND ID <> ?", [SEMI_SYNC_WAIT, except]);
  return r.map((x) => `${String(x.INFO)} (${String(x.STATE)})`);
}

describe('a chunk and a DELETE applied from the binlog before its commit is visible', () => {
  it.each([
    { mode: 'without row locks (default)', copyRowLocks: false, releasedBy: /^marker: INSERT INTO `consistent_marker`\.`t_marker_sslog` \(kind, value\) VALUES \('chunk'/ },
    { mode: 'with --copy-row-locks', copyRowLocks: true, releasedBy: /^row lock: INSERT IGNORE INTO .* LOCK IN SHARE MODE$/s },
  ])('$mode: the deleted row is not copied back', async ({ copyRowLocks, releasedBy }) => {
    const db = `consistent_${copyRowLocks ? 'locks' : 'marker'}`;
    const table = `t_${copyRowLocks ? 'locks' : 'marker'}`;
    await admin.query(`CREATE DATABASE ${db}`);
    const url = server.adminUrl(db);
    const holder = await mysqlConnect(url);
    await admin.query(`CREATE TABLE ${db}.${table} (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)`);
    await admin.query(`INSERT INTO ${db}.${table} SELECT seq, CONCAT('row ', seq) FROM ${mysqlSeq(1, 300)}`);
    const flag = join(dir, `throttle-${table}`);
    writeFileSync(flag, '');

    let chunkReached = false;
    let held: Promise<unknown> | null = null;
    const { log } = capturingLogger();
    // checksum off: the checksum would repair a row copied back, and this test is about the copy.
    const job = newJob(url, table, 'ADD COLUMN w INT NOT NULL DEFAULT 7', {
      log,
      chunkSize: 100,
      checksum: false,
      // A checkpoint written while the DELETE holds its commit would wait for an ACK too.
      checkpointIntervalSeconds: 3600,
      copyRowLocks,
      throttle: { flagFile: flag },
      testHooks: { beforeChunkCommit: async () => void (chunkReached = true) },
    });
    const run = job.prepare().then((r) => job.execute(r));
    run.catch(() => undefined);
    let releasedByWhat = '';
    try {
      // The stream runs; the copy waits for the flag before its first chunk.
      await waitUntil(() => job.status().waitingFor?.what === 'throttle', 'the copy to be throttled', 60_000);
      expect(job.status().rowsCopied).toBe(0);
      const applied = job.status().eventsApplied;
      await holdCommits(admin);
      held = holder.query(`DELETE FROM ${table} WHERE id = 50`);
      held.catch(() => undefined);
      await waitUntil(async () => (await commitsWaiting(-1)).some((q) => q.startsWith('DELETE') && q.endsWith(`(${SEMI_SYNC_WAIT})`)), 'the DELETE to wait for the semi-sync ACK', 20_000);
      // Its binlog events are written: the throttled loop still applies the stream.
      await waitUntil(() => job.status().eventsApplied > applied, 'the DELETE to be applied to the shadow', 30_000);
      const [[visible]] = (await admin.query(`SELECT COUNT(*) AS n FROM ${db}.${table} WHERE id = 50`)) as unknown as [[{ n: number }]];
      expect(Number(visible.n)).toBe(1); // applied, yet not visible to a consistent read

      const release = (async () => {
        await waitUntil(async () => {
          // Any other commit waiting releases too, and fails the test with its statement.
          const acks = await commitsWaiting(holder.threadId);
          const locked = acks.length > 0 ? [] : await waitingOnLocksOf(admin, holder.threadId);
          releasedByWhat = acks[0] ? `${acks[0].includes('_sslog') ? 'marker' : 'another commit'}: ${acks[0]}` : locked[0] ? `row lock: ${locked[0]}` : chunkReached ? 'the chunk reached its commit' : '';
          return releasedByWhat !== '';
        }, 'the chunk to wait for the DELETE, or to reach its commit without', 60_000, LOCK_POLL_MS).catch(async (err: Error) => {
          const [sessions] = await admin.query<RowDataPacket[]>('SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST WHERE INFO IS NOT NULL OR STATE <> ""');
          throw new Error(`${err.message}; sessions: ${JSON.stringify(sessions)}`);
        });
        await admin.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
      })();
      release.catch(() => undefined);
      rmSync(flag);
      await release;
      const result = await run;
      await held;
      expect(result.rowsCopied).toBeGreaterThan(0);
    } finally {
      rmSync(flag, { force: true });
      await restoreSemiSync(admin, saved);
      await (held as Promise<unknown> | null)?.catch(() => undefined);
      await run.catch(() => undefined);
      await job.close();
      await holder.end();
    }

    const [rows] = (await admin.query(`SELECT id, v, w FROM ${db}.${table} ORDER BY id`)) as unknown as [Array<{ id: number; v: string; w: number }>];
    expect(rows.some((r) => r.id === 50)).toBe(false);
    expect(rows).toHaveLength(299);
    expect(rows.every((r) => r.v === `row ${r.id}` && r.w === 7)).toBe(true);
    expect(releasedByWhat).toMatch(releasedBy);
  });
});

describe('a chunk without row locks', () => {
  it('copies past a row an application transaction keeps locked, and the row ends as committed', async () => {
    await admin.query('CREATE DATABASE consistent_held');
    const url = server.adminUrl('consistent_held');
    await admin.query('CREATE TABLE consistent_held.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)');
    await admin.query(`INSERT INTO consistent_held.t SELECT seq, CONCAT('row ', seq) FROM ${mysqlSeq(1, 3000)}`);
    const app = await mysqlConnect(url);
    try {
      const { log, lines } = capturingLogger();
      let locked = false;
      const lockRow = async () => {
        if (locked) return;
        locked = true;
        await app.query('BEGIN');
        await app.query("UPDATE t SET v = 'held' WHERE id = 1500");
      };
      const job = newJob(url, 't', 'ADD COLUMN w INT NOT NULL DEFAULT 7', { log, chunkSize: 200, checksum: false, testHooks: { beforeChunkCommit: lockRow } });
      const running = job.prepare().then((r) => job.execute(r)).finally(() => job.close());
      running.catch(() => undefined);
      // Under row locks the chunk over id 1500 would wait for this transaction (and time out).
      await waitUntil(() => lines.some((l) => l.msg === 'copy complete'), 'the copy to complete while the row stays locked', 60_000);
      expect(lines.some((l) => String(l.msg).startsWith('copying without row locks'))).toBe(true);
      await app.query('COMMIT');
      const result = await running;
      expect(result.rowsCopied).toBe(3000);
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      await app.end();
    }
    const [rows] = (await admin.query('SELECT id, v, w FROM consistent_held.t ORDER BY id')) as unknown as [Array<{ id: number; v: string; w: number }>];
    expect(rows).toHaveLength(3000);
    expect(rows.every((r) => r.v === (r.id === 1500 ? 'held' : `row ${r.id}`) && r.w === 7)).toBe(true);
  });
});
