// Server settings of the binary log that a job meets, on a server of this file's own
// (the settings are global). MariaDB with log_bin_compress=ON writes its row and query
// events compressed (WRITE_ROWS_COMPRESSED_EVENT and the like): a reader that skipped
// them would miss every change the application made during the copy without an error,
// so the job must apply them like plain row events. A small max_binlog_cache_size makes
// a copy chunk's transaction fail: the job must say which setting and what to do.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { alterUnderWrites } from '../support/under-writes.js';
import { runAlter } from '../support/alter.js';
import { ShadowshiftError } from '../../src/util/errors.js';
import { compareTables, formatDiffs } from '../support/compare.js';

describe('MariaDB binary log compression (log_bin_compress=ON)', () => {
  let server: RunningServer;
  let conn: Connection;
  let writer: Connection;
  let url: string;
  beforeAll(async () => {
    // A minimum length below every row event, so all of them are compressed.
    server = await startMariaDb({ extraArgs: ['--log-bin-compress=ON', '--log-bin-compress-min-len=10'] });
    const admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE app');
    await admin.end();
    url = server.adminUrl('app');
    conn = await mysqlConnect(url);
    writer = await mysqlConnect(url);
  }, 60_000);
  afterAll(async () => {
    await writer?.end();
    await conn?.end();
    await server?.stop();
  });

  it('applies compressed row events: the new table equals the original, nothing repaired', async () => {
    await conn.query('CREATE TABLE orders (id INT NOT NULL PRIMARY KEY, n INT NOT NULL, note TEXT)');
    await conn.query("INSERT INTO orders SELECT seq, seq, REPEAT(CONCAT('note ', seq, ' '), 20) FROM seq_1_to_3000");
    const [[{ File: file, Position: from }]] = (await conn.query('SHOW MASTER STATUS')) as unknown as [[{ File: string; Position: number }]];
    const run = await alterUnderWrites(url, 'orders', 'ADD COLUMN extra INT NULL', async (i) => {
      const id = (i * 37) % 3000 + 1;
      if (i % 4 === 0) await writer.query("INSERT INTO orders VALUES (?, ?, REPEAT('new ', 30))", [10_000 + i, i]);
      else if (i % 4 === 1) await writer.query('UPDATE orders SET id = id + 20000, n = n + 1 WHERE id = ?', [id]);
      else if (i % 4 === 2) await writer.query('DELETE FROM orders WHERE id = ?', [id]);
      else await writer.query("UPDATE orders SET note = CONCAT(note, 'u') WHERE id = ?", [id]);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    expect(run.writes).toBeGreaterThanOrEqual(20);
    const cmp = await compareTables(url, run.result.backupTable!, 'orders', { columns: ['id', 'n', 'note'] });
    expect(cmp.equal, formatDiffs(cmp)).toBe(true);
    // The application's changes did reach the binary log compressed.
    const [events] = (await conn.query(`SHOW BINLOG EVENTS IN '${file}' FROM ${from}`)) as unknown as [Array<{ Event_type: string }>];
    expect(events.some((e) => /compressed/i.test(e.Event_type) && /rows/i.test(e.Event_type))).toBe(true);
  });

  it('a chunk over max_binlog_cache_size fails the job naming the setting and the fix, the original untouched', async () => {
    await conn.query('CREATE TABLE texts (id INT NOT NULL PRIMARY KEY, body MEDIUMBLOB)');
    // Random bytes: this server compresses its events, and a repeated string would fit.
    await conn.query('INSERT INTO texts SELECT seq, CONCAT(RANDOM_BYTES(1000), RANDOM_BYTES(1000)) FROM seq_1_to_200');
    const [[before]] = (await conn.query('CHECKSUM TABLE texts')) as unknown as [[{ Checksum: number }]];
    const [[{ v: previous }]] = (await conn.query('SELECT @@GLOBAL.max_binlog_cache_size AS v')) as unknown as [[{ v: string }]];
    await conn.query('SET GLOBAL max_binlog_cache_size = 4096');
    try {
      const err = await runAlter(url, 'texts', 'ADD COLUMN extra INT NULL', { chunkSize: 100 }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ShadowshiftError);
      expect((err as Error).message).toMatch(/max_binlog_cache_size[\s\S]*untouched[\s\S]*--chunk-size[\s\S]*SET GLOBAL max_binlog_cache_size/);
    } finally {
      await conn.query(`SET GLOBAL max_binlog_cache_size = ${previous}`);
    }
    const [[after]] = (await conn.query('CHECKSUM TABLE texts')) as unknown as [[{ Checksum: number }]];
    expect(after.Checksum).toBe(before.Checksum);
    expect((await conn.query("SHOW TABLES LIKE 'texts%'"))[0]).toHaveLength(1);
  });
});
