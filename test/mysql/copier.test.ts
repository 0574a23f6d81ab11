// The chunk copy: composite keys, chunk ends, and warnings turned into DataLossError.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { Value } from '../../src/dialects/dialect.js';
import { DataLossError, TransientDatabaseError } from '../../src/util/errors.js';
import { freshDb, prepareShadow, tableNames } from './helpers.js';
import { wrapError } from '../../src/dialects/mysql/mysql-errors.js';
import { mysqlSeq } from '../support/db.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;

beforeAll(async () => {
  ({ session, admin, name: schema } = await freshDb('copier'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('copier', () => {
  it('walks a composite key in chunks and copies every row once', async () => {
    await admin.query("CREATE TABLE ck (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b))");
    await admin.query(`INSERT INTO ck SELECT seq DIV 10, CONCAT('k', seq MOD 10), seq FROM ${mysqlSeq(0, 999)}`);
    const { plan, names } = await prepareShadow(session, schema, 'ck', 'ADD COLUMN w INT');
    const bounds = (await session.copier.keyBounds(plan))!;
    expect(bounds).toEqual({ min: [0, 'k0'], max: [99, 'k9'] });
    let after: Value[] | null = null;
    let total = 0;
    let chunks = 0;
    for (;;) {
      const end = await session.copier.chunkEnd(plan, after, 37, bounds.max);
      total += (await session.copier.copyChunk(plan, { after, upTo: end })).rowsCopied;
      chunks++;
      after = end;
      if (JSON.stringify(end) === JSON.stringify(bounds.max)) break;
    }
    expect(total).toBe(1000);
    expect(chunks).toBe(Math.ceil(1000 / 37));
    const [[c]] = (await admin.query(`SELECT COUNT(*) AS n, SUM(v) AS s FROM \`${names.shadow}\``)) as unknown as [[{ n: string; s: string }]];
    expect(c).toEqual({ n: '1000', s: String((999 * 1000) / 2) });
    // A copied-over row the stream already wrote is kept (the stream's image wins).
    await admin.query(`UPDATE \`${names.shadow}\` SET v = -1 WHERE a = 0 AND b = 'k0'`);
    expect((await session.copier.copyChunk(plan, { after: null, upTo: [0, 'k5'] })).rowsCopied).toBe(0);
    const [[kept]] = (await admin.query(`SELECT v FROM \`${names.shadow}\` WHERE a = 0 AND b = 'k0'`)) as unknown as [[{ v: number }]];
    expect(kept.v).toBe(-1);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('is empty-table aware', async () => {
    await admin.query('CREATE TABLE empty_t (id INT PRIMARY KEY)');
    const { plan, names } = await prepareShadow(session, schema, 'empty_t', 'ADD COLUMN w INT');
    expect(await session.copier.keyBounds(plan)).toBeNull();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  async function expectLoss(table: string, create: string, insert: string, alter: string, message: RegExp): Promise<void> {
    await admin.query(create);
    await admin.query(insert);
    const { plan, names } = await prepareShadow(session, schema, table, alter);
    const bounds = (await session.copier.keyBounds(plan))!;
    const copy = () => session.copier.copyChunk(plan, { after: null, upTo: bounds.max }).catch((e: unknown) => e);
    let err = await copy();
    // A duplicate is first taken for a change the stream has not applied yet (the engine
    // applies the stream and copies the chunk again, under row locks after a copy without
    // them, and once more under them); met again then, it is data loss.
    for (let retries = 0; retries < 2 && err instanceof TransientDatabaseError && err.cause instanceof DataLossError; retries++) err = await copy();
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(message);
    // The chunk was rolled back: nothing reached the shadow.
    const [[c]] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${names.shadow}\``)) as unknown as [[{ n: string }]];
    expect(c.n).toBe('0');
    await session.dropArtefacts(names, { keepBackup: false });
  }

  it('a new UNIQUE key over duplicates', async () => {
    await expectLoss('dup', 'CREATE TABLE dup (id INT PRIMARY KEY, b INT)', 'INSERT INTO dup VALUES (1, 5), (2, 5), (3, 6)', 'ADD UNIQUE KEY u_b (b)', /u_b[\s\S]*'5'[\s\S]*duplicates/);
  });
  it('a narrowing VARCHAR', async () => {
    await expectLoss('narrow', 'CREATE TABLE narrow (id INT PRIMARY KEY, s VARCHAR(20))', "INSERT INTO narrow VALUES (1, 'short'), (2, 'much too long')", 'MODIFY s VARCHAR(5)', /column s[\s\S]*truncated/i);
  });
  it('NOT NULL over NULLs', async () => {
    await expectLoss('nn', 'CREATE TABLE nn (id INT PRIMARY KEY, s VARCHAR(20))', "INSERT INTO nn VALUES (1, 'x'), (2, NULL)", 'MODIFY s VARCHAR(20) NOT NULL', /column s[\s\S]*cannot be null/i);
  });
  it('an out-of-range integer', async () => {
    await expectLoss('rng', 'CREATE TABLE rng (id INT PRIMARY KEY, n INT)', 'INSERT INTO rng VALUES (1, 1), (2, 300)', 'MODIFY n TINYINT', /column n[\s\S]*Out of range/i);
  });
  it('an incorrect value for a new type', async () => {
    await expectLoss('inc', 'CREATE TABLE inc (id INT PRIMARY KEY, s VARCHAR(20))', "INSERT INTO inc VALUES (1, '12'), (2, 'abc')", 'MODIFY s INT', /column s/i);
  });

  it('a duplicate on a key the original also has is not data loss', async () => {
    await admin.query('CREATE TABLE okdup (id INT PRIMARY KEY, u INT NOT NULL, UNIQUE KEY u_u (u))');
    await admin.query('INSERT INTO okdup VALUES (1, 1), (2, 2)');
    const { plan, names } = await prepareShadow(session, schema, 'okdup', 'ADD COLUMN w INT');
    // The stream wrote id 3 with u = 2 before the copy reached id 2 (id 2 since changed in the original).
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, u) VALUES (3, 2)`);
    expect((await session.copier.copyChunk(plan, { after: null, upTo: [2] })).rowsCopied).toBe(1);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('a lock wait timeout, a deadlock or a lost connection is transient; a killed copy connection too', async () => {
    for (const e of [{ errno: 1205 }, { errno: 1213 }, { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }, { code: 'ECONNRESET' }]) {
      expect(wrapError(Object.assign(new Error('x'), e), 'copying')).toBeInstanceOf(TransientDatabaseError);
    }
    expect(wrapError(Object.assign(new Error('x'), { errno: 1146 }), 'copying')).not.toBeInstanceOf(TransientDatabaseError);
    // For real: the copy's connection is killed while the chunk's transaction is open.
    await admin.query('CREATE TABLE lk (id INT PRIMARY KEY, v INT)');
    await admin.query('INSERT INTO lk VALUES (1, 1), (2, 2)');
    const { plan, names } = await prepareShadow(session, schema, 'lk', 'ADD COLUMN w INT');
    const err = await session.copier
      .copyChunk(plan, { after: null, upTo: [2] }, async () => {
        // The chunk's open transaction holds a metadata lock on lk (nothing else does):
        // METADATA_LOCK_INFO (the plugin our test server loads) names its thread exactly.
        // Elsewhere, INNODB_TRX, a cache refreshed every 0.1 s.
        let me: { ID: number } | undefined;
        for (let i = 0; i < 400 && !me; i++) {
          [[me]] = (await admin
            .query(`SELECT THREAD_ID AS ID FROM information_schema.METADATA_LOCK_INFO WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'lk' AND THREAD_ID <> CONNECTION_ID() LIMIT 1`)
            .catch(() =>
              admin.query(
                `SELECT trx_mysql_thread_id AS ID FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_query IS NULL
                  AND trx_mysql_thread_id IN (SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE()) LIMIT 1`,
              ),
            )) as unknown as [[{ ID: number } | undefined]];
          if (!me) await new Promise((r) => setTimeout(r, 50));
        }
        if (!me) throw new Error("the chunk's transaction never showed (METADATA_LOCK_INFO / INNODB_TRX) within 20 s");
        await admin.query(`KILL ${me.ID}`);
        await new Promise((r) => setTimeout(r, 100));
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientDatabaseError);
    const [[c]] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${names.shadow}\``)) as unknown as [[{ n: string }]];
    expect(c.n).toBe('0');
    expect(await tableNames(admin)).toContain(names.shadow);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
