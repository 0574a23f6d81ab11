// Issue 18, "Also cover": a job SIGKILLed during the copy, then the binary log its checkpoint
// points at is purged. `alter --resume` must refuse before it changes anything, saying which
// log is gone, that the stream cannot continue, and what to do (cleanup, start again, keep
// binary logs longer); the advice must work. Its own server: PURGE BINARY LOGS would pull the
// logs from under every other file's jobs on the shared one.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { mysqlSeq } from '../support/db.js';
import { killFixtureAt } from '../support/kill-at.js';
import type { KillFixtureArgs } from '../support/kill-fixture.js';

const ALTER = 'ADD COLUMN w INT NOT NULL DEFAULT 7';

describe('resume after the checkpoint\'s binary log was purged', () => {
  let server: RunningServer;
  let conn: Connection;
  let url: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ss-purged-'));
    server = await startMariaDb();
    const admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE shop');
    await admin.end();
    url = server.adminUrl('shop');
    conn = await mysqlConnect(url);
  }, 60_000);
  afterAll(async () => {
    await conn?.end();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rows(sql: string): Promise<Record<string, unknown>[]> {
    const [r] = await conn.query(sql);
    return r as Record<string, unknown>[];
  }
  const state = async () => ({
    tables: (await rows('SHOW TABLES')).map((r) => String(Object.values(r)[0])).sort(),
    create: (await rows('SHOW CREATE TABLE orders'))[0]!['Create Table'],
    checksum: (await rows('CHECKSUM TABLE orders'))[0]!.Checksum,
    checkpoint: await rows('SELECT checkpoint FROM _shadowshift_checkpoints'),
    shadowRows: (await rows('SELECT COUNT(*) AS n FROM orders_ssnew'))[0]!.n,
  });

  it('refuses with the purged log named and the way out, changes nothing, and cleanup + a new run work', async () => {
    await conn.query('CREATE TABLE orders (id INT PRIMARY KEY, v INT NOT NULL)');
    await conn.query(`INSERT INTO orders SELECT seq, seq FROM ${mysqlSeq(1, 20_000)}`);
    const flagFile = join(dir, 'stopped');
    const args: KillFixtureArgs = { url, table: 'orders', alter: ALTER, stopAt: 'copying', flagFile, copyRows: 2000, chunkSize: 500, checkpointIntervalSeconds: 0.1 };
    await killFixtureAt(args, 'the job to stop in the copy');
    // Written while no job runs: this is what the purged log would have carried to the shadow.
    await conn.query('UPDATE orders SET v = -v WHERE id IN (1, 19999)');

    const [cp] = await rows('SELECT checkpoint FROM _shadowshift_checkpoints');
    const position = String((JSON.parse(String(cp!.checkpoint)) as { streamPosition: string }).streamPosition);
    const file = position.slice(0, position.lastIndexOf(':'));
    // PURGE keeps a log a dump thread still reads; the dead run's would go only once the
    // server next writes to its socket.
    for (const t of await rows("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")) await conn.query(`KILL ${Number(t.ID)}`);
    await waitUntil(async () => (await rows("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")).length === 0, 'the dead run\'s dump thread to end');
    await conn.query('FLUSH BINARY LOGS');
    const [current] = await rows('SHOW MASTER STATUS');
    // MariaDB keeps a log until its binlog checkpoint has moved past it (written in the
    // background after the rotation): PURGE quietly leaves it until then.
    await waitUntil(async () => {
      await conn.query(`PURGE BINARY LOGS TO '${String(current!.File)}'`);
      return !(await rows('SHOW BINARY LOGS')).some((r) => r.Log_name === file);
    }, `PURGE BINARY LOGS to remove ${file}`);

    const before = await state();
    expect(before.tables).toEqual(['_shadowshift_checkpoints', 'orders', 'orders_sslog', 'orders_ssnew']);
    const resumed = await startCli(['alter', '--table', 'orders', '--alter', ALTER, '--execute', '--resume', '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url }).done;
    expect(resumed.code, resumed.stderr.slice(-3000)).toBe(3);
    const said = resumed.stdout + resumed.stderr;
    expect(said).toContain(`the binary log ${file} that the checkpoint's position ${position} is in was purged from the server (its oldest binary log is now ${String(current!.File)})`);
    expect(said).toContain('The change stream cannot continue where the stopped run left it, and the shadow orders_ssnew would miss what changed since. Nothing was changed.');
    expect(said).toContain('Run `shadowshift cleanup --execute` (it removes what the stopped run left: orders_ssnew, orders_sslog and the checkpoint), then start the job again without --resume');
    expect(said).toMatch(/keep binary logs longer than a job may stay stopped \(binlog_expire_logs_seconds; expire_logs_days/);
    expect(await state()).toEqual(before);

    // The way out it names.
    const cleanup = await startCli(['cleanup', '--url', url, '--execute']).done;
    expect(cleanup.code, cleanup.stderr.slice(-3000)).toBe(0);
    const again = await startCli(['alter', '--table', 'orders', '--alter', ALTER, '--execute', '--json', '--control-socket', join(dir, 'a.sock')], { SHADOWSHIFT_URL: url }).done;
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    expect(JSON.parse(again.stdout).result.repairedChunks).toBe(0);
    expect(await rows('SELECT COUNT(*) AS n, SUM(v) AS s, MIN(w) AS w FROM orders')).toEqual([{ n: '20000', s: String((20_000 * 20_001) / 2 - 2 * 1 - 2 * 19_999), w: 7 }]);
  }, 180_000);
});
