// Unique keys the ALTER makes compare less finely (a collation, a DECIMAL scale, a
// prefix): values the original keeps apart become equal in the new table. A native
// ALTER fails on such duplicates; the job must too, and never drop or replace a row
// (issue 9: 'K00007' inserted beside 'k00007' while the job was postponed on
// MariaDB 10.11 vanished, and the job exited 0).

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';
import { DataLossError, PreflightError } from '../../src/util/errors.js';
import { mysqlSeq } from '../support/db.js';

const TO_CASE_INSENSITIVE = 'MODIFY code VARCHAR(16) COLLATE utf8mb4_general_ci';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('weakened')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

async function rows(sql: string): Promise<Record<string, unknown>[]> {
  const [r] = await conn.query(sql);
  return r as Record<string, unknown>[];
}

async function tables(): Promise<string[]> {
  return (await rows('SHOW TABLES')).map((r) => String(Object.values(r)[0])).sort();
}

async function fingerprint(table: string) {
  const [create] = await rows(`SHOW CREATE TABLE \`${table}\``);
  const [checksum] = await rows(`CHECKSUM TABLE \`${table}\``);
  return { create: create!['Create Table'], checksum: checksum!.Checksum, tables: await tables() };
}

describe('a unique key whose collation the ALTER changes', () => {
  it('a row inserted while the job is postponed that collides under the new collation fails the job; both rows stay', async () => {
    await conn.query('CREATE TABLE codes (id INT PRIMARY KEY, code VARCHAR(16) COLLATE utf8mb4_bin UNIQUE)');
    await conn.query(`INSERT INTO codes SELECT seq, CONCAT('k', LPAD(seq, 5, '0')) FROM ${mysqlSeq(1, 20)}`);
    const dir = mkdtempSync(join(tmpdir(), 'ss-weakened-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'codes', TO_CASE_INSENSITIVE, { postponeCutoverFlagFile: flag, checksum: false });
    let outcome: unknown;
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(true);
      const running = job.execute(report).catch((e: unknown) => e);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();
      await conn.query("INSERT INTO codes VALUES (21, 'K00007')");
      rmSync(flag);
      outcome = await running;
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // The table under the original name still holds both rows, as the original did.
    expect(await rows("SELECT id, code FROM codes WHERE id IN (7, 21) ORDER BY id")).toEqual([
      { id: 7, code: 'k00007' },
      { id: 21, code: 'K00007' },
    ]);
    expect(outcome).toBeInstanceOf(DataLossError);
    const message = (outcome as Error).message;
    expect(message).toContain("unique key code would hold the same value twice in the new table ('K00007'; the changed row id=21 collides with the row id=7)");
    expect(message).toContain('the ALTER changes how code compares (collation utf8mb4_bin → utf8mb4_general_ci)');
    expect((await rows('SHOW CREATE TABLE codes'))[0]!['Create Table']).toMatch(/utf8mb4_bin/);
    expect(await tables()).toEqual(['codes']);
  });

  it('rows that already collide fail the copy instead of being skipped', async () => {
    await conn.query('CREATE TABLE letters (id INT PRIMARY KEY, code VARCHAR(16) COLLATE utf8mb4_bin NOT NULL, UNIQUE KEY u_code (code))');
    await conn.query(`INSERT INTO letters SELECT seq, CONCAT('c', seq) FROM ${mysqlSeq(1, 500)}`);
    await conn.query("UPDATE letters SET code = 'a' WHERE id = 100");
    await conn.query("UPDATE letters SET code = 'A' WHERE id = 400");
    const before = await fingerprint('letters');
    const err = await runAlter(url, 'letters', 'MODIFY code VARCHAR(16) COLLATE utf8mb4_general_ci NOT NULL', { checksum: false }).then(
      () => null,
      (e: unknown) => e,
    );
    expect((await rows('SELECT COUNT(*) AS n FROM letters'))[0]).toEqual({ n: '500' });
    expect(err).toBeInstanceOf(DataLossError);
    const message = (err as Error).message;
    expect(message).toMatch(/^copying the chunk of letters .*: unique key u_code would hold the same value twice in the new table \('A'; the row id=400 collides with the row id=100\)/);
    expect(message).toContain('the ALTER changes how code compares (collation utf8mb4_bin → utf8mb4_general_ci)');
    expect(await fingerprint('letters')).toEqual(before);
  });

  it('a weakened primary key with no other key to copy by is refused at preflight, naming the key and why', async () => {
    await conn.query('CREATE TABLE only_code (code VARCHAR(16) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, v INT)');
    await conn.query("INSERT INTO only_code VALUES ('x', 1), ('X', 2)");
    const before = await fingerprint('only_code');
    const err = await runAlter(url, 'only_code', 'MODIFY code VARCHAR(16) COLLATE utf8mb4_general_ci NOT NULL').then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PreflightError);
    expect((err as PreflightError).exitCode).toBe(3);
    expect((err as Error).message).toContain(
      'the ALTER changes how code compares (collation utf8mb4_bin → utf8mb4_general_ci), so PRIMARY is a new unique key and cannot be the copy key',
    );
    expect(await fingerprint('only_code')).toEqual(before);
  });
});

describe('what the inspector tells the copy plan', () => {
  it('a shorter prefix, a smaller DECIMAL scale and fewer fractional seconds make new keys', async () => {
    await conn.query(
      `CREATE TABLE narrowed (id INT PRIMARY KEY, code VARCHAR(32) COLLATE utf8mb4_bin NOT NULL, amount DECIMAL(10,4) NOT NULL, at DATETIME(6) NOT NULL,
         UNIQUE KEY u_code20 (code(20)), UNIQUE KEY u_amount (amount), UNIQUE KEY u_at (at))`,
    );
    const job = newJob(url, 'narrowed', 'DROP INDEX u_code20, ADD UNIQUE KEY u_code10 (code(10)), MODIFY amount DECIMAL(10,2) NOT NULL, MODIFY at DATETIME NOT NULL');
    try {
      const report = await job.prepare();
      expect(report.key).toEqual([{ source: 'id', target: 'id' }]);
      expect(report.weakenedUniqueIndexes.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
        { name: 'u_amount', originalName: 'u_amount', change: 'how precisely amount compares (decimal, precision 4 → 2)' },
        { name: 'u_at', originalName: 'u_at', change: 'how precisely at compares (datetime, precision 6 → 0)' },
        { name: 'u_code10', originalName: 'u_code20', change: 'how much of code the key compares (index prefix 20 → 10)' },
      ]);
    } finally {
      await job.close();
    }
  });
});

describe('widening keeps keys as they were', () => {
  it('INT → BIGINT on the primary key and more DECIMAL scale / fractional seconds / length on unique keys copy every row', async () => {
    await conn.query(
      `CREATE TABLE widened (id INT PRIMARY KEY, amount DECIMAL(10,2) NOT NULL, at DATETIME NOT NULL, code VARCHAR(10) COLLATE utf8mb4_bin,
         UNIQUE KEY u_amount (amount), UNIQUE KEY u_at (at), UNIQUE KEY u_code (code))`,
    );
    await conn.query(
      `INSERT INTO widened SELECT seq, seq / 100, '2024-01-01' + INTERVAL seq SECOND, IF(seq % 2, CONCAT('k', seq), CONCAT('K', seq)) FROM ${mysqlSeq(1, 3000)}`,
    );
    const summary = 'SELECT COUNT(*) AS n, SUM(id) AS ids, SUM(amount) AS amounts, SUM(UNIX_TIMESTAMP(at)) AS ats, SUM(CRC32(code)) AS codes FROM widened';
    const before = await rows(summary);
    const alter = 'MODIFY id BIGINT NOT NULL, MODIFY amount DECIMAL(12,4) NOT NULL, MODIFY at DATETIME(6) NOT NULL, MODIFY code VARCHAR(20) COLLATE utf8mb4_bin';
    const job = newJob(url, 'widened', alter);
    try {
      const report = await job.prepare();
      expect(report.key).toEqual([{ source: 'id', target: 'id' }]);
      expect(report.newUniqueIndexes).toEqual([]);
    } finally {
      await job.close();
    }
    const result = await runAlter(url, 'widened', alter, { checksum: false, dropOldTable: true });
    expect(result.rowsCopied).toBe(3000);
    expect((await rows("SHOW COLUMNS FROM widened WHERE Field IN ('id', 'amount', 'at')")).map((c) => c.Type)).toEqual(['bigint(20)', 'decimal(12,4)', 'datetime(6)']);
    // The wider types print more digits (1.50 → 1.5000): compare the numbers.
    const numbers = (r: Record<string, unknown>[]) => r.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)])));
    expect(numbers(await rows(summary))).toEqual(numbers(before));
  });
});
