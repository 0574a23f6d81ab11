// Invariant 3 (docs/ARCHITECTURE.md), made deterministic: while a chunk's copy transaction is
// open, another client deletes one of its rows and updates another. The copy's
// shared locks make those writes wait until the chunk commits, so their binlog
// events come after the copied rows and are applied over them: the deleted row
// must not come back and the updated row must not go stale.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { runAlter } from '../support/alter.js';
import type { KeyRange } from '../../src/dialects/dialect.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;
let writer: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('race')).url;
  conn = await mysqlConnect(url);
  writer = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
  await writer?.end();
});

describe('a row changed while its chunk is being copied', () => {
  it('is neither resurrected nor stale in the new table', async () => {
    await conn.query('CREATE TABLE race (id INT PRIMARY KEY, v INT NOT NULL)');
    await conn.query(`INSERT INTO race SELECT seq, seq FROM ${mysqlSeq(1, 1000)}`);

    const timeline: string[] = [];
    let hooked = false;
    const beforeChunkCommit = async (range: KeyRange) => {
      if (hooked || range.after !== null) return; // only the first chunk: ids 1..100
      hooked = true;
      const del = writer.query('DELETE FROM race WHERE id = 50').then(() => timeline.push('delete committed'));
      const upd = conn.query('UPDATE race SET v = -60 WHERE id = 60').then(() => timeline.push('update committed'));
      // Give the writes every chance to run early; the shared locks must hold them.
      await new Promise((r) => setTimeout(r, 700));
      timeline.push('chunk commits');
      void Promise.all([del, upd]);
    };

    const result = await runAlter(url, 'race', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', { chunkSize: 100, testHooks: { beforeChunkCommit } });
    // Right without the checksum's help: it compared and repaired nothing.
    expect(result).toMatchObject({ repairedChunks: 0, checksum: { ran: true } });

    expect(hooked).toBe(true);
    // The competing writes waited for the chunk's transaction.
    expect(timeline[0]).toBe('chunk commits');
    expect(timeline).toHaveLength(3);
    const [rows] = (await conn.query('SELECT id, v, extra FROM race WHERE id IN (49, 50, 60) ORDER BY id')) as unknown as [unknown[]];
    expect(rows).toEqual([
      { id: 49, v: 49, extra: 7 },
      { id: 60, v: -60, extra: 7 },
    ]);
    const [[count]] = (await conn.query('SELECT COUNT(*) AS n FROM race')) as unknown as [[{ n: string }]];
    expect(count.n).toBe('999');
  });
});
