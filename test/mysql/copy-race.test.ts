// Invariant 3 (docs/ARCHITECTURE.md), made deterministic: while a chunk's copy transaction is
// open, another client deletes one of its rows and updates another. Without row locks
// (the default) those writes commit while the chunk is still open, and their events are
// applied after it; with --copy-row-locks the chunk's shared locks make them wait until it
// commits. Either way the deleted row must not come back and the updated row must not go
// stale, with no checksum repair.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { runAlter, waitUntil } from '../support/alter.js';
import type { KeyRange } from '../../src/dialects/dialect.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;
let writer: Connection;
let updater: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('race')).url;
  conn = await mysqlConnect(url);
  writer = await mysqlConnect(url);
  updater = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
  await writer?.end();
  await updater?.end();
});

/** Whether the session's statement waits for a row lock (InnoDB's view refreshes after 100 ms unread). */
async function waitsForRowLock(threadId: number): Promise<boolean> {
  const [r] = await conn.query<RowDataPacket[]>(
    `SELECT 1 FROM information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX t ON t.trx_id = w.requesting_trx_id WHERE t.trx_mysql_thread_id = ?`,
    [threadId],
  );
  return r.length > 0;
}

describe.each([
  { mode: 'without row locks (default)', copyRowLocks: false },
  { mode: 'with --copy-row-locks', copyRowLocks: true },
])('a row changed while its chunk is being copied, $mode', ({ copyRowLocks }) => {
  it('is neither resurrected nor stale in the new table', async () => {
    const table = copyRowLocks ? 'race_locks' : 'race';
    await conn.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await conn.query(`INSERT INTO ${table} SELECT seq, seq FROM ${mysqlSeq(1, 1000)}`);

    const timeline: string[] = [];
    let hooked = false;
    const beforeChunkCommit = async (range: KeyRange) => {
      if (hooked || range.after !== null) return; // only the first chunk: ids 1..100
      hooked = true;
      const del = writer.query(`DELETE FROM ${table} WHERE id = 50`).then(() => timeline.push('delete committed'));
      const upd = updater.query(`UPDATE ${table} SET v = -60 WHERE id = 60`).then(() => timeline.push('update committed'));
      if (copyRowLocks) {
        // The shared locks hold both writes until the chunk commits.
        await waitUntil(async () => (await waitsForRowLock(writer.threadId)) && (await waitsForRowLock(updater.threadId)), 'both writes to wait for the chunk', 30_000, 250);
      } else {
        await Promise.all([del, upd]); // nothing holds them
      }
      timeline.push('chunk commits');
      void Promise.all([del, upd]);
    };

    const result = await runAlter(url, table, 'ADD COLUMN extra INT NOT NULL DEFAULT 7', { chunkSize: 100, copyRowLocks, testHooks: { beforeChunkCommit } });
    // Right without the checksum's help: it compared and repaired nothing.
    expect(result).toMatchObject({ repairedChunks: 0, checksum: { ran: true } });

    expect(hooked).toBe(true);
    expect(timeline).toHaveLength(3);
    expect(timeline.indexOf('chunk commits')).toBe(copyRowLocks ? 0 : 2);
    const [rows] = (await conn.query(`SELECT id, v, extra FROM ${table} WHERE id IN (49, 50, 60) ORDER BY id`)) as unknown as [unknown[]];
    expect(rows).toEqual([
      { id: 49, v: 49, extra: 7 },
      { id: 60, v: -60, extra: 7 },
    ]);
    const [[count]] = (await conn.query(`SELECT COUNT(*) AS n FROM ${table}`)) as unknown as [[{ n: string }]];
    expect(count.n).toBe('999');
  });
});
