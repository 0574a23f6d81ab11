// The checksum compares columns whose type the ALTER changes, by converting the
// original's value to the shadow's type: a wrong value in such a column is found and
// repaired. Columns without an exact conversion are left out, and the job says so once.
// The test server runs at +05:30, so TIMESTAMP <-> DATETIME conversions are real shifts.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { checksumColumns } from '../../src/dialects/mysql/mysql-checksum.js';
import { newJob, waitUntil } from '../support/alter.js';
import { freshDb, prepareShadow } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;
let url: string;

beforeAll(async () => {
  ({ session, admin, name: schema, url } = await freshDb('ckconv'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

const SEED = `SELECT seq, TIMESTAMP'2010-03-28 00:00:00.000001' + INTERVAL seq * 611 MINUTE, TIMESTAMP'1999-10-31 01:00:00.5' + INTERVAL seq * 97 MINUTE,
  seq * 1000003, seq / 3, seq * 1.5, TIME'10:00:00.123456' + INTERVAL seq SECOND, DATE'2000-01-01' + INTERVAL seq DAY,
  CONCAT('ünï ', seq, '  ') FROM ${mysqlSeq(1, 200)}`;

describe('checksum over changed types', () => {
  it('hashes each changed column as the original converted to the new type: a wrong value is found, recopy repairs it', async () => {
    await admin.query(`CREATE TABLE cv (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(3), n INT, d DECIMAL(10,2), f FLOAT,
      t TIME(6), dd DATE, s VARCHAR(20) CHARACTER SET latin1)`);
    await admin.query(`INSERT INTO cv ${SEED}`);
    const { plan, names } = await prepareShadow(
      session,
      schema,
      'cv',
      'MODIFY ts DATETIME(6) NULL, MODIFY dt TIMESTAMP(3) NULL DEFAULT NULL, MODIFY n BIGINT, MODIFY d DECIMAL(12,4), MODIFY f DOUBLE, ' +
        'MODIFY t TIME(3), MODIFY dd DATETIME(2), MODIFY s CHAR(30) CHARACTER SET utf8mb4',
    );
    const { compared, skipped } = checksumColumns(plan, '+05:30');
    expect(compared.map((c) => c.source)).toEqual(['id', 'ts', 'dt', 'n', 'd', 't', 'dd', 's']);
    expect(skipped).toEqual([{ column: 'f', from: 'float', to: 'double', reason: expect.stringMatching(/no conversion from float to double/) }]);

    await session.copier.copyChunk(plan, { after: null, upTo: [200] });
    const all = { after: null, upTo: [200] };
    const same = async () => {
      const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
      try {
        return (await view.compare(all)).same;
      } finally {
        await view.close();
      }
    };
    // Equal although every s lost its trailing spaces to CHAR and every ts/dt moved by 5:30.
    expect(await same()).toBe(true);
    const shadow = `\`${names.shadow}\``;
    const sabotage: Record<string, string> = {
      ts: `UPDATE ${shadow} SET ts = ts + INTERVAL 1 MICROSECOND WHERE id = 11`,
      dt: `UPDATE ${shadow} SET dt = dt + INTERVAL 1 HOUR WHERE id = 12`,
      n: `UPDATE ${shadow} SET n = n + 1 WHERE id = 13`,
      d: `UPDATE ${shadow} SET d = d + 0.0001 WHERE id = 14`,
      t: `UPDATE ${shadow} SET t = t + INTERVAL 1000 MICROSECOND WHERE id = 15`,
      dd: `UPDATE ${shadow} SET dd = dd + INTERVAL 10000 MICROSECOND WHERE id = 16`,
      s: `UPDATE ${shadow} SET s = CONCAT('x', s) WHERE id = 17`,
    };
    for (const [column, sql] of Object.entries(sabotage)) {
      await admin.query(sql);
      expect(await same(), column).toBe(false);
      await session.checksummer.recopy(plan, all);
      expect(await same(), `${column} after recopy`).toBe(true);
    }
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('while postponed, the job finds a wrong converted value in the shadow and repairs it, and says once what it does not compare', async () => {
    await admin.query('CREATE TABLE pj (id INT PRIMARY KEY, ts TIMESTAMP(6) NULL DEFAULT NULL, dt DATETIME(3), n INT, d DECIMAL(10,2), f FLOAT)');
    await admin.query(`INSERT INTO pj SELECT seq, TIMESTAMP'2010-03-28 00:00:00.000001' + INTERVAL seq * 611 MINUTE, TIMESTAMP'1999-10-31 01:00:00.5' + INTERVAL seq * 97 MINUTE,
      seq * 1000003, seq / 3, seq * 1.5 FROM ${mysqlSeq(1, 300)}`);
    await admin.query('CREATE TABLE pj_expected LIKE pj');
    await admin.query('INSERT INTO pj_expected SELECT * FROM pj');
    const alter = 'MODIFY ts DATETIME(6) NULL, MODIFY dt TIMESTAMP(3) NULL DEFAULT NULL, MODIFY n BIGINT, MODIFY d DECIMAL(12,4), MODIFY f DOUBLE';

    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const said = (re: RegExp) => lines.filter((l) => re.test(String(l.msg))).length;
    const dir = mkdtempSync(join(tmpdir(), 'ss-ckconv-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'pj', alter, { chunkSize: 100, postponeCutoverFlagFile: flag, checksumIntervalSeconds: 1, log });
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();
      expect(job.status().repairedChunks).toBe(0);

      // Off by the server's offset: what a copy in UTC would have written.
      await admin.query(`UPDATE \`${job.status().shadowTable}\` SET ts = ts - INTERVAL 330 MINUTE WHERE id = 123`);
      const seen = said(/original and shadow match/);
      // Two more checksums finished: at least one of them began after the sabotage.
      await waitUntil(() => said(/original and shadow match/) >= seen + 2 || job.status().state === 'failed', 'two more checksums');
      expect(said(/checksum: repaired key range/)).toBe(1);
      expect(said(/checksum: original and shadow match after 1 repair\(s\)/)).toBe(1);
      expect(job.status().repairedChunks).toBe(1);
      rmSync(flag);
      await running;
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await admin.query(`ALTER TABLE pj_expected ${alter}`);
    const rows = async (t: string) => (await admin.query(`SELECT * FROM ${t} ORDER BY id`))[0];
    expect(await rows('pj')).toEqual(await rows('pj_expected'));
    const skips = lines.filter((l) => /checksum: not comparing/.test(String(l.msg)));
    expect(skips).toHaveLength(1);
    expect(skips[0]).toMatchObject({ msg: expect.stringMatching(/not comparing f \(no conversion from float to double/) });
  });
});
