// TIMESTAMP <-> DATETIME changes convert as the server would. shadowshift's sessions
// run at +00:00; a native ALTER converts in the session time zone, the server's
// default for an ordinary session. The test server runs at +05:30, so a conversion
// done in UTC shows as a 5:30 shift. The expected table is an identical copy that a
// native ALTER converts in a session at the server's default zone, with the same
// writes made to it.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { TEST_MYSQL_TIME_ZONE } from '../support/servers.js';
import { DataLossError } from '../../src/util/errors.js';
import type { KeyRange } from '../../src/dialects/dialect.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('tzalter')).url;
  conn = await mysqlConnect(url);
  const [[z]] = (await conn.query('SELECT @@global.time_zone AS g, @@session.time_zone AS s')) as unknown as [[{ g: string; s: string }]];
  // The test means nothing at UTC: both must be the server's non-UTC default.
  expect(z).toEqual({ g: TEST_MYSQL_TIME_ZONE, s: TEST_MYSQL_TIME_ZONE });
});
afterAll(async () => {
  await conn?.end();
});

const ALTER = 'MODIFY ts DATETIME(6) NULL, MODIFY dt TIMESTAMP(3) NULL DEFAULT NULL, MODIFY n BIGINT, MODIFY d DECIMAL(12,4)';

async function createTable(name: string): Promise<void> {
  await conn.query(
    `CREATE TABLE ${name} (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(3) NULL, n INT, d DECIMAL(10,2), note VARCHAR(40))`,
  );
}

/** Statements run on the migrated table and on its expected twin alike. */
const DURING_COPY = [
  "UPDATE {t} SET ts = '2021-03-04 05:06:07.654321', dt = '1999-12-31 23:59:59.999', n = 7, d = 3.14 WHERE id = 20",
  "UPDATE {t} SET ts = NULL, dt = '0000-00-00 00:00:00' WHERE id = 21",
  'DELETE FROM {t} WHERE id = 22',
  "INSERT INTO {t} VALUES (100, '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999', 100, 100.01, 'inserted during the copy')",
];
const WHILE_POSTPONED = [
  'UPDATE {t} SET ts = ts + INTERVAL 1 DAY, dt = dt - INTERVAL 1 HOUR WHERE id IN (1, 30, 100)',
  "UPDATE {t} SET ts = '0000-00-00 00:00:00' WHERE id = 31",
  "INSERT INTO {t} VALUES (101, '1970-01-01 05:30:01.000001', '2037-06-15 12:00:00.5', -5, -0.01, 'inserted while postponed')",
  'DELETE FROM {t} WHERE id = 32',
];

async function runOn(table: string, statements: string[]): Promise<void> {
  for (const s of statements) await conn.query(s.replaceAll('{t}', table));
}

function capturingLog(lines: Array<Record<string, unknown>>) {
  return pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
}

const matches = (lines: Array<Record<string, unknown>>) => lines.filter((l) => /original and shadow match/.test(String(l.msg))).length;

describe('TIMESTAMP <-> DATETIME in the server time zone', () => {
  it('copy, stream and checksum give what a native ALTER gives', async () => {
    await createTable('tz');
    await conn.query(`INSERT INTO tz VALUES
      (1, '2020-06-01 12:00:00.123456', '2020-06-01 12:00:00.123', 1, 1.25, 'plain'),
      (2, '1970-01-01 05:30:01', '1970-01-01 05:30:01', -2147483648, -99999999.99, 'lowest'),
      (3, '2038-01-19 08:44:07.999999', '2030-01-01 00:00:00.001', 2147483647, 99999999.99, 'highest'),
      (4, '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0, 0, 'zero'),
      (5, NULL, NULL, NULL, NULL, 'nulls')`);
    await conn.query(`INSERT INTO tz SELECT seq, TIMESTAMP'2001-01-01 00:00:00' + INTERVAL seq * 7919 MINUTE + INTERVAL seq * 1234 MICROSECOND,
      TIMESTAMP'1980-05-05 05:05:05' + INTERVAL seq * 104729 MINUTE + INTERVAL seq * 3000 MICROSECOND, seq * 1000, seq / 7, CONCAT('row ', seq) FROM ${mysqlSeq(6, 60)}`);
    await conn.query('CREATE TABLE tz_expected LIKE tz');
    await conn.query('INSERT INTO tz_expected SELECT * FROM tz');

    const dir = mkdtempSync(join(tmpdir(), 'ss-tz-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const lines: Array<Record<string, unknown>> = [];
    let wroteDuringCopy = false;
    const beforeChunkCommit = async (range: KeyRange) => {
      if (wroteDuringCopy || range.after !== null) return; // the first chunk is ids 1..10; these rows are later ones
      wroteDuringCopy = true;
      await runOn('tz', DURING_COPY);
    };
    const job = newJob(url, 'tz', ALTER, { chunkSize: 10, postponeCutoverFlagFile: flag, checksumIntervalSeconds: 1, log: capturingLog(lines), testHooks: { beforeChunkCommit } });
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(true);
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();
      expect(wroteDuringCopy).toBe(true);

      await runOn('tz', WHILE_POSTPONED);
      await waitUntil(() => job.status().eventsApplied >= 4 + 6 && job.status().backlog === 0, 'the stream to apply the writes');
      // Two more checksums finished: at least one of them began after the writes.
      const seen = matches(lines);
      await waitUntil(() => matches(lines) >= seen + 2 || job.status().state === 'failed', 'two more checksums while postponed');
      rmSync(flag);
      await running;
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await runOn('tz_expected', [...DURING_COPY, ...WHILE_POSTPONED]);
    await conn.query(`ALTER TABLE tz_expected ${ALTER}`);

    const rows = async (t: string) => (await conn.query(`SELECT * FROM ${t} ORDER BY id`))[0];
    expect(await rows('tz')).toEqual(await rows('tz_expected'));
    // Against literals too, so a shift applied to both sides cannot hide.
    const [spot] = (await conn.query("SET time_zone = '+00:00'; SELECT id, ts, dt FROM tz WHERE id IN (1, 4, 101) ORDER BY id; SET time_zone = DEFAULT")) as unknown as [
      [unknown, Array<{ id: number; ts: string; dt: string }>, unknown],
    ];
    expect(spot[1]).toEqual([
      { id: 1, ts: '2020-06-02 12:00:00.123456', dt: '2020-06-01 05:30:00.123' },
      { id: 4, ts: '0000-00-00 00:00:00.000000', dt: '0000-00-00 00:00:00.000' },
      { id: 101, ts: '1970-01-01 05:30:01.000001', dt: '2037-06-15 06:30:00.500' },
    ]);

    // Every changed column was compared, nothing needed repair, and preflight said which zone it used.
    expect(lines.filter((l) => /checksum: (not comparing|chunk differs)/.test(String(l.msg)))).toEqual([]);
    expect(matches(lines)).toBeGreaterThanOrEqual(3);
  });

  it("the ends of TIMESTAMP's range in the server zone convert both ways, through copy and stream", async () => {
    const ends = "(1, '1970-01-01 05:30:01', '1970-01-01 05:30:01'), (2, '2038-01-19 08:44:07.999999', '2038-01-19 08:44:07.999999')";
    await conn.query('CREATE TABLE ends (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(6) NULL)');
    await conn.query(`INSERT INTO ends VALUES ${ends}`);
    await conn.query('CREATE TABLE ends_expected LIKE ends');
    await conn.query(`INSERT INTO ends_expected VALUES ${ends}, ${ends.replaceAll('(1,', '(11,').replaceAll('(2,', '(12,')}`);
    const alter = 'MODIFY ts DATETIME(6) NULL, MODIFY dt TIMESTAMP(6) NULL DEFAULT NULL';
    const dir = mkdtempSync(join(tmpdir(), 'ss-tz-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'ends', alter, { postponeCutoverFlagFile: flag });
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();
      await conn.query(`INSERT INTO ends VALUES ${ends.replaceAll('(1,', '(11,').replaceAll('(2,', '(12,')}`);
      await waitUntil(() => job.status().eventsApplied >= 2 && job.status().backlog === 0, 'the stream to apply the inserts');
      rmSync(flag);
      await running;
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await conn.query(`ALTER TABLE ends_expected ${alter}`);
    const rows = async (t: string) => (await conn.query(`SELECT * FROM ${t} ORDER BY id`))[0];
    expect(await rows('ends')).toEqual(await rows('ends_expected'));
  });

  it('a DATETIME outside TIMESTAMP range in the server zone fails the job, as a native ALTER in strict mode fails', async () => {
    // 05:29:59 at +05:30 is before 1970-01-01 00:00:01 UTC; read as UTC it would be a valid TIMESTAMP.
    await conn.query('CREATE TABLE oor (id INT PRIMARY KEY, dt DATETIME NULL)');
    await conn.query("INSERT INTO oor VALUES (1, '2000-01-01 00:00:00'), (2, '1970-01-01 05:29:59')");
    await conn.query('CREATE TABLE oor_native LIKE oor');
    await conn.query('INSERT INTO oor_native SELECT * FROM oor');
    await expect(conn.query('ALTER TABLE oor_native MODIFY dt TIMESTAMP NULL DEFAULT NULL')).rejects.toMatchObject({ errno: 1292 });

    const copy = newJob(url, 'oor', 'MODIFY dt TIMESTAMP NULL DEFAULT NULL');
    try {
      const err = await copy.execute(await copy.prepare()).catch((e: Error) => e);
      expect(err).toBeInstanceOf(DataLossError);
      expect((err as Error).message).toMatch(/dt is converted from datetime to timestamp in the server's time zone \+05:30.*key \(2\) holds '1970-01-01 05:29:59'/);
    } finally {
      await copy.close();
    }

    // The same value arriving through the stream.
    await conn.query('DELETE FROM oor WHERE id = 2');
    const dir = mkdtempSync(join(tmpdir(), 'ss-tz-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'oor', 'MODIFY dt TIMESTAMP NULL DEFAULT NULL', { postponeCutoverFlagFile: flag });
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to postpone');
      await conn.query("INSERT INTO oor VALUES (3, '1970-01-01 05:00:00')");
      const err = await running.catch((e: Error) => e);
      expect(err).toBeInstanceOf(DataLossError);
      expect((err as Error).message).toMatch(/not convertible to TIMESTAMP in time zone \+05:30: 1970-01-01 05:00:00/);
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const [[{ n }]] = (await conn.query("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%oor%new%'")) as unknown as [[{ n: string }]];
    expect(n).toBe('0');
  });

  it('preflight names the zone, and refuses what it does not convert', async () => {
    await conn.query('CREATE TABLE pf (id INT PRIMARY KEY, ts TIMESTAMP NULL DEFAULT NULL, k TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE KEY (k))');
    const prepare = async (alter: string) => {
      const job = newJob(url, 'pf', alter);
      try {
        return await job.prepare();
      } finally {
        await job.close();
      }
    };
    const check = async (alter: string) => (await prepare(alter)).checks.find((c) => c.check === 'time-zone-conversions');
    expect(await check('MODIFY ts DATETIME NULL')).toMatchObject({ ok: true, message: expect.stringContaining('+05:30') });
    expect(await check('MODIFY ts VARCHAR(40) NULL')).toMatchObject({ ok: false, message: expect.stringMatching(/ts \(timestamp to varchar\(40\)\).*second one/) });
    // A key whose values change compares differently: it cannot be the copy key, and no other key is left.
    const keyChange = await prepare('DROP PRIMARY KEY, MODIFY k DATETIME NOT NULL');
    expect(keyChange.ok).toBe(false);
    expect(keyChange.checks.filter((c) => !c.ok).map((c) => c.message).join('\n')).toMatch(/\bk\b/);
    expect(await check('ADD COLUMN x INT')).toMatchObject({ ok: true });
  });
});
