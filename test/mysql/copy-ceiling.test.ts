// Invariant 2 at the top of the key: a transaction whose binlog events are written
// before the stream's start position but whose InnoDB commit is not visible yet
// (semi-sync AFTER_SYNC waiting for a replica's ACK) is not streamed; if it inserts
// a new largest key, the copy's ceiling must still reach it, or the row is lost.
//
// MariaDB's built-in semi-sync holds such a commit for real (test/support/held-commit.ts);
// the switch is global, so this file runs its own throwaway server.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { runAlter, waitUntil } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';
import { LOCK_POLL_MS, SEMI_SYNC_WAIT, holdCommits, restoreSemiSync, semiSyncSettings, waitingOnLocksOf } from '../support/held-commit.js';

let server: RunningServer;
let url: string;
let admin: Connection;
let holder: Connection;
let saved: RowDataPacket[] = [];

beforeAll(async () => {
  server = await startMariaDb();
  admin = await mysqlConnect(server.adminUrl('mysql'));
  await admin.query('CREATE DATABASE ceiling');
  url = server.adminUrl('ceiling');
  holder = await mysqlConnect(url);
  saved = await semiSyncSettings(admin);
});

afterAll(async () => {
  await holder?.end();
  await admin?.end();
  await server?.stop();
});

async function stateOf(threadId: number): Promise<string | null> {
  const [r] = await admin.query<RowDataPacket[]>('SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?', [threadId]);
  return r[0] ? String(r[0].STATE) : null;
}

describe('the copy ceiling and a commit held between binlog write and engine commit', () => {
  it('a new largest key whose commit is held across the stream start is copied', async () => {
    const names = saved.map((v) => String(v.Variable_name));
    expect(names).toEqual(expect.arrayContaining(['rpl_semi_sync_master_enabled', 'rpl_semi_sync_master_wait_point', 'rpl_semi_sync_master_timeout', 'rpl_semi_sync_master_wait_no_slave']));
    await admin.query('CREATE TABLE ceiling.t (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL)');
    await admin.query(`INSERT INTO ceiling.t SELECT seq, CONCAT('row ', seq) FROM ${mysqlSeq(1, 300)}`);

    let held: Promise<unknown> | null = null;
    let chunkReached = false;
    let releasedBy: string | null = null;
    let release: Promise<void> | null = null;
    const seen: { binlogBefore?: string; binlogHeld?: string; maxWhileHeld?: number } = {};

    const beforeStreamStart = async () => {
      const [[before]] = (await admin.query('SHOW MASTER STATUS')) as unknown as [[{ Position: number }]];
      seen.binlogBefore = String(before.Position);
      // A long timeout: the test releases the commit itself, on a condition.
      await holdCommits(admin);
      held = holder.query("INSERT INTO t VALUES (1000, 'held at the top')");
      held.catch(() => undefined);
      await waitUntil(async () => (await stateOf(holder.threadId)) === SEMI_SYNC_WAIT, 'the holder to wait for the semi-sync ACK', 20_000);
      const [[after]] = (await admin.query('SHOW MASTER STATUS')) as unknown as [[{ Position: number }]];
      seen.binlogHeld = String(after.Position);
      const [[max]] = (await admin.query('SELECT MAX(id) AS m FROM ceiling.t')) as unknown as [[{ m: number }]];
      seen.maxWhileHeld = max.m;
      // Release the commit once the job's ceiling read waits for it (the fix), or once
      // the first chunk is about to commit (a ceiling read that did not wait) — the
      // chunk's own commit would otherwise wait for an ACK too.
      release = (async () => {
        await waitUntil(async () => {
          if (chunkReached) {
            releasedBy = 'first chunk';
            return true;
          }
          const waiters = await waitingOnLocksOf(admin, holder.threadId);
          if (waiters.length > 0) releasedBy = waiters.join('; ');
          return waiters.length > 0;
        }, 'the ceiling read to wait for the held commit or the first chunk', 60_000, LOCK_POLL_MS);
        await admin.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
      })();
      release.catch(() => undefined);
    };
    const beforeChunkCommit = async () => {
      chunkReached = true;
      await release;
    };

    try {
      await runAlter(url, 't', 'ADD COLUMN w INT NOT NULL DEFAULT 7', { chunkSize: 100, checksum: false, testHooks: { beforeStreamStart, beforeChunkCommit } });
      await held;
    } finally {
      await restoreSemiSync(admin, saved);
      await (held as Promise<unknown> | null)?.catch(() => undefined);
    }

    // The holder's binlog events were written before the stream's start position was
    // read (the hook runs just before it), and its row was invisible to a plain read.
    expect(Number(seen.binlogHeld)).toBeGreaterThan(Number(seen.binlogBefore));
    expect(seen.maxWhileHeld).toBe(300);

    const [rows] = (await admin.query('SELECT id, v, w FROM ceiling.t ORDER BY id')) as unknown as [Array<{ id: number; v: string; w: number }>];
    expect(rows.at(-1)).toEqual({ id: 1000, v: 'held at the top', w: 7 });
    expect(rows).toHaveLength(301);
    expect(rows.slice(0, 300).every((r, i) => r.id === i + 1 && r.v === `row ${i + 1}` && r.w === 7)).toBe(true);
    // The ceiling's locking read is what waited for the held commit.
    expect(releasedBy).toMatch(/ORDER BY `id` DESC LIMIT 1 LOCK IN SHARE MODE/);
  });
});
