// TIMESTAMP <-> DATETIME across DST changes, in a zone with DST: Europe/Berlin as a
// named zone (time zone tables loaded) and as SYSTEM (the server process runs with
// TZ=Europe/Berlin). A time in a fold must get the instant a native ALTER gives it; a
// local time the spring change skips is refused, as a native ALTER in strict mode
// refuses it. The server's global time zone is switched per case, which would disturb
// other test files on the shared server: this file runs its own.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { DataLossError } from '../../src/util/errors.js';

let server: RunningServer;
let admin: Connection;

beforeAll(async () => {
  const tz = process.env.TZ;
  process.env.TZ = 'Europe/Berlin'; // inherited by the server process: its SYSTEM zone
  try {
    server = await startMariaDb();
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
  admin = await mysqlConnect(server.adminUrl('mysql'));
  await admin.query(execFileSync('mariadb-tzinfo-to-sql', ['/usr/share/zoneinfo/Europe/Berlin', 'Europe/Berlin'], { encoding: 'utf8' }));
  const [[z]] = (await admin.query('SELECT @@system_time_zone AS s')) as unknown as [[{ s: string }]];
  expect(['CET', 'CEST']).toContain(z.s);
});
afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

// ts as UTC instants (both 00:30 and 01:30 UTC on 31 Oct are 02:30 in Berlin), dt as local times.
const ROWS = `
  (1, '2021-10-31 00:30:00', '2021-10-31 02:30:00'),
  (2, '2021-10-31 01:30:00', '2021-10-31 02:59:59.999999'),
  (3, '2021-03-28 00:59:59.999999', '2021-03-28 01:59:59.999999'),
  (4, '2021-03-28 01:00:00', '2021-03-28 03:00:00'),
  (5, '2021-07-01 10:00:00', '2021-07-01 12:00:00'),
  (6, '2021-01-01 11:00:00', '2021-01-01 12:00:00')`;
const LATER = ROWS.replace(/\((\d),/g, '(1$1,');
const ALTER = 'MODIFY ts DATETIME(6) NULL, MODIFY dt TIMESTAMP(6) NULL DEFAULT NULL';

async function postponedJob(url: string, table: string, during: () => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ss-dst-'));
  const flag = join(dir, 'postpone');
  writeFileSync(flag, '');
  const job = newJob(url, table, ALTER, { postponeCutoverFlagFile: flag });
  try {
    const running = job.execute(await job.prepare());
    running.catch(() => undefined);
    await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
    expect(job.status().error).toBeNull();
    await during();
    await waitUntil(() => (job.status().eventsApplied > 0 && job.status().backlog === 0) || job.status().state === 'failed', 'the stream to apply the writes');
    rmSync(flag);
    await running;
  } finally {
    await job.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(['Europe/Berlin', 'SYSTEM'])('time zone %s', (zone) => {
  let url: string;
  let local: Connection;
  let utc: Connection;

  beforeAll(async () => {
    await admin.query(`SET GLOBAL time_zone = '${zone}'`);
    const db = `dst_${zone.replace(/\W/g, '_').toLowerCase()}`;
    await admin.query(`CREATE DATABASE ${db}`);
    url = server.adminUrl(db);
    local = await mysqlConnect(url); // at the server's default zone, as a native ALTER would run
    utc = await mysqlConnect(url);
    await utc.query("SET time_zone = '+00:00'");
  });
  afterAll(async () => {
    await local?.end();
    await utc?.end();
  });

  it('folds convert as a native ALTER converts them, through copy, stream and checksum', async () => {
    await utc.query('CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(6) NULL)');
    await utc.query(`INSERT INTO t VALUES ${ROWS}`);
    await utc.query('CREATE TABLE t_expected LIKE t');
    await utc.query(`INSERT INTO t_expected VALUES ${ROWS}, ${LATER}`);
    await postponedJob(url, 't', () => utc.query(`INSERT INTO t VALUES ${LATER}`).then(() => undefined));
    await local.query(`ALTER TABLE t_expected ${ALTER}`);

    const rows = async (t: string) => (await utc.query(`SELECT * FROM ${t} ORDER BY id`))[0];
    expect(await rows('t')).toEqual(await rows('t_expected'));
    const [spot] = (await utc.query('SELECT id, ts, dt FROM t WHERE id IN (1, 2, 4, 14) ORDER BY id')) as unknown as [Array<{ id: number; ts: string; dt: string }>];
    expect(spot.map((r) => [r.id, r.ts])).toEqual([
      [1, '2021-10-31 02:30:00.000000'],
      [2, '2021-10-31 02:30:00.000000'],
      [4, '2021-03-28 03:00:00.000000'],
      [14, '2021-03-28 03:00:00.000000'],
    ]);
    // Which of a fold's two instants a local time gets depends on the zone's implementation
    // (the named zone takes the first, SYSTEM the second here): the native ALTER's choice, above.
    expect(['2021-10-31 00:30:00.000000', '2021-10-31 01:30:00.000000']).toContain(spot[0]!.dt);
    expect(spot[2]!.dt).toBe('2021-03-28 01:00:00.000000');
  });

  it('a local time the spring change skips fails the job, in the copy and in the stream', async () => {
    await utc.query('CREATE TABLE g (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(6) NULL)');
    await utc.query("INSERT INTO g VALUES (1, NULL, '2021-03-28 01:00:00'), (2, NULL, '2021-03-28 02:30:00')");
    await utc.query('CREATE TABLE g_native LIKE g');
    await utc.query('INSERT INTO g_native SELECT * FROM g');
    await expect(local.query(`ALTER TABLE g_native ${ALTER}`)).rejects.toMatchObject({ errno: 1292 });

    const job = newJob(url, 'g', ALTER);
    try {
      const err = await job.execute(await job.prepare()).catch((e: Error) => e);
      expect(err).toBeInstanceOf(DataLossError);
      expect((err as Error).message).toMatch(/DST change skips.*key \(2\) holds '2021-03-28 02:30:00.000000'/);
    } finally {
      await job.close();
    }

    await utc.query('DELETE FROM g WHERE id = 2');
    const err = await postponedJob(url, 'g', () => utc.query("INSERT INTO g VALUES (3, NULL, '2021-03-28 02:00:00')").then(() => undefined)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(new RegExp(`not convertible to TIMESTAMP in time zone ${zone}: 2021-03-28 02:00:00`));
  });
});
