// Invariant 2 at the top of the key: a transaction whose binlog events are written
// before the stream's start position but whose InnoDB commit is not visible yet
// (semi-sync AFTER_SYNC waiting for a replica's ACK) is not streamed; if it inserts
// a new largest key, the copy's ceiling must still reach it, or the row is lost.
//
// MariaDB's built-in semi-sync holds such a commit for real: with no semi-sync
// replica connected and rpl_semi_sync_master_wait_no_slave ON, a commit writes its
// binlog and then waits for an ACK until the timeout (or until semi-sync is switched
// off). The switch is global and would stall every other test's commits, so this
// file runs its own throwaway server.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { runAlter, waitUntil } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';

const SEMI_SYNC_WAIT = 'Waiting for semi-sync ACK from slave';

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
  [saved] = await admin.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_master_%'");
});

afterAll(async () => {
  await holder?.end();
  await admin?.end();
  await server?.stop();
});

async function restoreSemiSync(): Promise<void> {
  // Switching semi-sync off also releases any commit still waiting for an ACK.
  await admin.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
  for (const v of saved) {
    if (['rpl_semi_sync_master_wait_point', 'rpl_semi_sync_master_timeout', 'rpl_semi_sync_master_wait_no_slave'].includes(String(v.Variable_name))) {
      await admin.query(`SET GLOBAL ${String(v.Variable_name)} = ?`, [/^\d+$/.test(String(v.Value)) ? Number(v.Value) : String(v.Value)]);
    }
  }
}

async function stateOf(threadId: number): Promise<string | null> {
  const [r] = await admin.query<RowDataPacket[]>('SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = ?', [threadId]);
  return r[0] ? String(r[0].STATE) : null;
}

/**
 * InnoDB refreshes the cache behind INNODB_TRX and INNODB_LOCK_WAITS only once it has
 * gone 100 ms without a reader: polling faster would read the same stale cache forever.
 */
const LOCK_POLL_MS = 250;

/** Statements waiting for a row lock the given connection's transaction holds. */
async function waitingOn(threadId: number): Promise<string[]> {
  const [r] = await admin.query<RowDataPacket[]>(
    `SELECT req.trx_query AS q FROM information_schema.INNODB_LOCK_WAITS w
       JOIN information_schema.INNODB_TRX req ON req.trx_id = w.requesting_trx_id
       JOIN information_schema.INNODB_TRX blk ON blk.trx_id = w.blocking_trx_id
      WHERE blk.trx_mysql_thread_id = ?`,
    [threadId],
  );
  return r.map((x) => String(x.q));
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
      await admin.query(
        "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC', rpl_semi_sync_master_timeout = 120000, rpl_semi_sync_master_wait_no_slave = ON, rpl_semi_sync_master_enabled = ON",
      );
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
          const waiters = await waitingOn(holder.threadId);
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
      await restoreSemiSync();
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
