// A resumable MySQL job that fails mid-copy keeps its shadow and checkpoint, and
// --resume finishes with the same table a clean run gives (stream position from the
// checkpoint: changes made while no job ran are applied).

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { runAlter } from '../support/alter.js';
import type { KeyRange } from '../../src/dialects/dialect.js';
import { tableNames } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;
beforeAll(async () => {
  url = (await createMysqlDatabase('resume')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

describe('resumable job on MySQL', () => {
  it('fails mid-copy, keeps state, and resumes to the right table', async () => {
    await conn.query('CREATE TABLE r (id INT PRIMARY KEY, v INT NOT NULL)');
    await conn.query(`INSERT INTO r SELECT seq, seq FROM ${mysqlSeq(1, 2000)}`);
    let chunks = 0;
    const failing = async (_range: KeyRange) => {
      if (++chunks === 4) throw new Error('simulated crash');
    };
    await expect(
      runAlter(url, 'r', 'ADD COLUMN w INT NOT NULL DEFAULT 5', { chunkSize: 200, resumable: true, checkpointIntervalSeconds: 0, testHooks: { beforeChunkCommit: failing } }),
    ).rejects.toThrow(/simulated crash/);
    expect(await tableNames(conn)).toEqual(expect.arrayContaining(['r_ssnew', 'r_sslog', '_shadowshift_checkpoints']));
    // cleanup tells the kept state apart.
    const { openSession } = await import('./helpers.js');
    const s = await openSession(url);
    expect((await s.listLeftovers()).filter((l) => l.name.startsWith('r_')).map((l) => [l.name, l.resumable]).sort()).toEqual([
      ['r_sslog', true],
      ['r_ssnew', true],
    ]);
    await s.close();
    // Changes while no job runs: they must reach the new table through the binlog.
    await conn.query('UPDATE r SET v = -v WHERE id IN (1, 1500)');
    await conn.query('DELETE FROM r WHERE id = 2');
    await conn.query('INSERT INTO r VALUES (5000, 5000)');
    const result = await runAlter(url, 'r', 'ADD COLUMN w INT NOT NULL DEFAULT 5', { chunkSize: 200, resume: true });
    expect(result.rowsCopied).toBeGreaterThan(1000);
    // The resumed run's own count: the failed run never reached its checksum.
    expect(result).toMatchObject({ repairedChunks: 0, checksum: { ran: true } });
    const [[c]] = (await conn.query('SELECT COUNT(*) AS n, SUM(v) AS s, MIN(w) AS w FROM r')) as unknown as [[{ n: string; s: string; w: number }]];
    expect(c).toEqual({ n: '2000', s: String((2000 * 2001) / 2 - 2 - 2 * 1 - 2 * 1500 + 5000), w: 5 });
    expect((await tableNames(conn)).filter((t) => !t.startsWith('r_ssold_'))).toEqual(['r']);
  });
});
