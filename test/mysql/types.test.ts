// Every MySQL type the issue lists, through both paths (the chunk copy and the
// binlog stream), compared byte for byte between the original and the result.
// The test server runs in time zone +05:30, so TIMESTAMP mistakes show.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('types')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

const COLUMNS: Array<[name: string, type: string, numeric?: boolean]> = [
  ['ti', 'TINYINT', true],
  ['tiu', 'TINYINT UNSIGNED', true],
  ['si', 'SMALLINT', true],
  ['siu', 'SMALLINT UNSIGNED', true],
  ['mi', 'MEDIUMINT', true],
  ['miu', 'MEDIUMINT UNSIGNED', true],
  ['i', 'INT', true],
  ['iu', 'INT UNSIGNED', true],
  ['bi', 'BIGINT', true],
  ['biu', 'BIGINT UNSIGNED', true],
  ['dec65', 'DECIMAL(65,30)', true],
  ['fl', 'FLOAT', true],
  ['db', 'DOUBLE', true],
  ['ch', 'CHAR(10) CHARACTER SET utf8mb4'],
  ['vc', 'VARCHAR(100) CHARACTER SET utf8mb4'],
  ['tx', 'TEXT CHARACTER SET utf8mb4'],
  ['l1', 'VARCHAR(50) CHARACTER SET latin1'],
  ['bn', 'BINARY(8)'],
  ['vb', 'VARBINARY(64)'],
  ['bl', 'BLOB'],
  ['d', 'DATE'],
  ['t6', 'TIME(6)'],
  ['dt6', 'DATETIME(6)'],
  ['ts6', 'TIMESTAMP(6) NULL'],
  ['yr', 'YEAR'],
  ['en', "ENUM('small','medium','large')"],
  ['st', "SET('a','b','c','d')"],
  ['b1', 'BIT(1)'],
  ['b13', 'BIT(13)'],
  ['b64', 'BIT(64)'],
  ['js', 'JSON'],
];

const MAX_ROW = `(
  127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
  '99999999999999999999999999999999999.999999999999999999999999999999', 3.40282e38, 1.7976931348623157e308,
  'ten chars!', 'emoji 🚀👩‍👩‍👧 and ✓', REPEAT('long 😀 ', 500), 'café ß ÿ',
  X'0102000000000000', X'00FF00FF000000', X'000102030405FEFF00000000',
  '9999-12-31', '838:59:59.000000', '9999-12-31 23:59:59.999999', '2038-01-19 08:44:07.999999', 2155,
  'large', 'a,c,d', b'1', b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111',
  '{"big": 12345678901234567890, "f": 0.1, "s": "ü\\\\n", "a": [1, null, true]}'
)`;

const MIN_ROW = `(
  -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  '-0.000000000000000000000000000001', -1.17549e-38, 2.2250738585072014e-308,
  '', '', '', '',
  X'0000000000000000', X'', X'',
  '1000-01-01', '-838:59:59.000000', '1000-01-01 00:00:00.000000', '1970-01-01 05:30:01.000001', 1901,
  'small', '', b'0', b'0', b'0',
  '[]'
)`;

const NULL_ROW = `(${COLUMNS.map(() => 'NULL').join(', ')})`;
const columnList = COLUMNS.map(([n]) => n).join(', ');

function comparison(a: string, b: string): string {
  return COLUMNS.map(([n, , numeric]) => (numeric ? `(${a}.${n} <=> ${b}.${n})` : `(HEX(${a}.${n}) <=> HEX(${b}.${n}))`)).join(' AND ');
}

async function differingIds(a: string, b: string): Promise<number[]> {
  const [rows] = (await conn.query(
    `SELECT x.id FROM \`${a}\` x LEFT JOIN \`${b}\` y ON y.id = x.id WHERE y.id IS NULL OR NOT (${comparison('x', 'y')}) ` +
      `UNION SELECT y.id FROM \`${b}\` y LEFT JOIN \`${a}\` x ON x.id = y.id WHERE x.id IS NULL`,
  )) as unknown as [Array<{ id: number }>];
  return rows.map((r) => r.id);
}

describe('types survive copy and stream byte for byte', () => {
  it('every listed type, through both paths', async () => {
    await conn.query(
      `CREATE TABLE types (id INT PRIMARY KEY, ${COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ')},
        gen_virtual BIGINT AS (bi DIV 2) VIRTUAL, gen_stored VARCHAR(200) AS (CONCAT(vc, '!')) STORED)`,
    );
    await conn.query(`INSERT INTO types (id, ${columnList}) VALUES (1, ${MAX_ROW.slice(1)}, (2, ${MIN_ROW.slice(1)}, (3, ${NULL_ROW.slice(1)}`);

    const dir = mkdtempSync(join(tmpdir(), 'ss-types-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'types', 'ADD COLUMN added INT NOT NULL DEFAULT 1', { postponeCutoverFlagFile: flag });
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(true);
      const running = job.execute(report);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();

      // The same values again, now through the binlog: inserts, an update that
      // swaps extremes, and a delete.
      await conn.query(`INSERT INTO types (id, ${columnList}) VALUES (11, ${MAX_ROW.slice(1)}, (12, ${MIN_ROW.slice(1)}, (13, ${NULL_ROW.slice(1)}`);
      await conn.query(`UPDATE types t JOIN types s ON s.id = 2 SET ${COLUMNS.map(([n]) => `t.${n} = s.${n}`).join(', ')} WHERE t.id = 3`);
      await conn.query(`UPDATE types t JOIN types s ON s.id = 11 SET ${COLUMNS.map(([n]) => `t.${n} = s.${n}`).join(', ')} WHERE t.id = 2`);
      await conn.query(`INSERT INTO types (id, ${columnList}) VALUES (14, ${NULL_ROW.slice(1)}`);
      await conn.query('DELETE FROM types WHERE id = 14');
      await waitUntil(() => job.status().eventsApplied >= 7 && job.status().backlog === 0, 'the stream to apply the writes');

      const shadow = job.status().shadowTable!;
      expect(await differingIds('types', shadow)).toEqual([]);

      rmSync(flag);
      await running;
      expect(job.status().repairedChunks).toBe(0);
      const backup = job.status().backupTable!;
      expect(await differingIds('types', backup)).toEqual([]);
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }

    // Spot checks against literal values, so a conversion applied to both sides cannot hide.
    const [rows] = (await conn.query(
      'SELECT id, biu, bi, dec65, HEX(bn) AS bn, HEX(bl) AS bl, dt6, ts6, t6, vc, l1, st, en, HEX(b64) AS b64, gen_virtual, gen_stored, CAST(js AS CHAR) AS js FROM types WHERE id IN (11, 12, 13) ORDER BY id',
    )) as unknown as [Array<Record<string, unknown>>];
    expect(rows[0]).toMatchObject({
      biu: '18446744073709551615',
      bi: '9223372036854775807',
      dec65: '99999999999999999999999999999999999.999999999999999999999999999999',
      bn: '0102000000000000',
      bl: '000102030405FEFF00000000',
      dt6: '9999-12-31 23:59:59.999999',
      ts6: '2038-01-19 08:44:07.999999',
      t6: '838:59:59.000000',
      vc: 'emoji 🚀👩‍👩‍👧 and ✓',
      l1: 'café ß ÿ',
      st: 'a,c,d',
      en: 'large',
      b64: 'FFFFFFFFFFFFFFFF',
      gen_virtual: '4611686018427387903',
      gen_stored: 'emoji 🚀👩‍👩‍👧 and ✓!',
    });
    expect(JSON.parse(String(rows[0]!.js)).s).toBe('ü\n');
    expect(String(rows[0]!.js)).toContain('12345678901234567890');
    expect(rows[1]).toMatchObject({ bi: '-9223372036854775808', ts6: '1970-01-01 05:30:01.000001', t6: '-838:59:59.000000', dec65: '-0.000000000000000000000000000001' });
    expect(Object.entries(rows[2]!).filter(([k, v]) => k !== 'id' && v !== null)).toEqual([]);
  });
});
