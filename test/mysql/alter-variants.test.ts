// Each supported kind of ALTER, end to end through the engine on MariaDB, and
// the ALTERs that would lose data: those must fail with the original untouched.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { runAlter } from '../support/alter.js';
import { DataLossError } from '../../src/util/errors.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('variants')).url;
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

/** A fresh table `name` with 3000 rows: id, a (int), b (varchar), c (text). */
async function seed(name: string, extra = ''): Promise<void> {
  await conn.query(`DROP TABLE IF EXISTS \`${name}\``);
  await conn.query(`CREATE TABLE \`${name}\` (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40), c TEXT${extra})`);
  await conn.query(
    `INSERT INTO \`${name}\` (id, a, b, c) SELECT seq, seq * 3, CONCAT('b-', seq), REPEAT('x', seq % 50) FROM ${mysqlSeq(1, 3000)}`,
  );
}

async function dropBackups(): Promise<void> {
  for (const t of await tables()) if (t.includes('ssold')) await conn.query(`DROP TABLE \`${t}\``);
}

describe('ALTERs the engine carries data through', () => {
  it('adds a column with a default and an index', async () => {
    await seed('t_add');
    const result = await runAlter(url, 't_add', "ADD COLUMN d VARCHAR(10) NOT NULL DEFAULT 'dflt', ADD INDEX idx_a (a)");
    expect(result.rowsCopied).toBe(3000);
    expect(await rows("SELECT COUNT(*) AS n FROM t_add WHERE d = 'dflt' AND b = CONCAT('b-', id) AND a = id * 3")).toEqual([{ n: '3000' }]);
    expect((await rows("SHOW INDEX FROM t_add WHERE Key_name = 'idx_a'")).length).toBe(1);
    expect(result.backupTable).toBeTruthy();
    expect(await tables()).toContain(result.backupTable);
    await dropBackups();
  });

  it('drops, modifies and reorders columns', async () => {
    await seed('t_mod');
    await runAlter(url, 't_mod', 'DROP COLUMN c, MODIFY a BIGINT NOT NULL, MODIFY b VARCHAR(60) FIRST');
    const cols = (await rows('SHOW COLUMNS FROM t_mod')).map((r) => `${r.Field}:${r.Type}`);
    expect(cols).toEqual(['b:varchar(60)', 'id:int(11)', 'a:bigint(20)']);
    expect(await rows("SELECT COUNT(*) AS n FROM t_mod WHERE a = id * 3 AND b = CONCAT('b-', id)")).toEqual([{ n: '3000' }]);
    await dropBackups();
  });

  it('renames a column with CHANGE and with RENAME COLUMN: the data follows', async () => {
    await seed('t_ren');
    await runAlter(url, 't_ren', 'CHANGE b bee VARCHAR(40), RENAME COLUMN a TO ay');
    expect(await rows("SELECT COUNT(*) AS n FROM t_ren WHERE ay = id * 3 AND bee = CONCAT('b-', id)")).toEqual([{ n: '3000' }]);
    await dropBackups();
  });

  it('a column dropped and added again under its name starts empty', async () => {
    await seed('t_readd');
    await runAlter(url, 't_readd', 'DROP COLUMN b, ADD COLUMN b VARCHAR(40) NULL');
    expect(await rows('SELECT COUNT(*) AS n FROM t_readd WHERE b IS NULL')).toEqual([{ n: '3000' }]);
    await dropBackups();
  });

  it('converts the character set of a column and of the table', async () => {
    await conn.query('DROP TABLE IF EXISTS t_cs');
    await conn.query('CREATE TABLE t_cs (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET latin1, note VARCHAR(20)) CHARACTER SET latin1');
    await conn.query("INSERT INTO t_cs VALUES (1, 'café', 'naïve'), (2, 'Ærø', 'ß')");
    await runAlter(url, 't_cs', 'CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
    expect(await rows('SELECT id, name, note, CHARSET(name) AS cs FROM t_cs ORDER BY id')).toEqual([
      { id: 1, name: 'café', note: 'naïve', cs: 'utf8mb4' },
      { id: 2, name: 'Ærø', note: 'ß', cs: 'utf8mb4' },
    ]);
    await runAlter(url, 't_cs', 'MODIFY note VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci');
    expect(await rows("SELECT COLLATION(note) AS c FROM t_cs WHERE id = 1")).toEqual([{ c: 'utf8mb4_unicode_ci' }]);
    await dropBackups();
  });

  it('adds and drops indexes, and rebuilds with ENGINE=InnoDB', async () => {
    await seed('t_idx', ', KEY idx_b (b)');
    await runAlter(url, 't_idx', 'DROP INDEX idx_b, ADD UNIQUE INDEX u_b (b)');
    const keys = (await rows('SHOW INDEX FROM t_idx')).map((r) => r.Key_name);
    expect(keys).toContain('u_b');
    expect(keys).not.toContain('idx_b');
    const before = await rows('CHECKSUM TABLE t_idx');
    await runAlter(url, 't_idx', 'ENGINE=InnoDB');
    expect(await rows('CHECKSUM TABLE t_idx')).toEqual(before);
    await dropBackups();
  });

  it('moves the primary key to another unique key', async () => {
    await conn.query('DROP TABLE IF EXISTS t_pk');
    await conn.query('CREATE TABLE t_pk (id INT NOT NULL, code CHAR(8) NOT NULL, v INT, PRIMARY KEY (id), UNIQUE KEY u_code (code))');
    await conn.query(`INSERT INTO t_pk SELECT seq, LPAD(seq, 8, '0'), seq FROM ${mysqlSeq(1, 2000)}`);
    await runAlter(url, 't_pk', 'DROP PRIMARY KEY, ADD PRIMARY KEY (code), ADD UNIQUE KEY u_id (id)');
    const pk = (await rows("SHOW INDEX FROM t_pk WHERE Key_name = 'PRIMARY'")).map((r) => r.Column_name);
    expect(pk).toEqual(['code']);
    expect(await rows('SELECT COUNT(*) AS n, SUM(v = id) AS ok FROM t_pk')).toEqual([{ n: '2000', ok: '2000' }]);
    await dropBackups();
  });

  it('drops the old table when asked to', async () => {
    await seed('t_drop');
    const result = await runAlter(url, 't_drop', 'ADD COLUMN z INT', { dropOldTable: true });
    expect(result.backupTable).toBeNull();
    expect((await tables()).filter((t) => t.startsWith('_t_drop'))).toEqual([]);
  });
});

describe('ALTERs that would lose data fail loudly, original untouched', () => {
  async function expectRefused(table: string, alter: string, message: RegExp): Promise<void> {
    const before = await fingerprint(table);
    const err = await runAlter(url, table, alter).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(message);
    expect(await fingerprint(table)).toEqual(before);
  }

  it('a new UNIQUE key over duplicate values', async () => {
    await seed('t_dup');
    await conn.query("UPDATE t_dup SET b = 'same' WHERE id IN (1500, 2500)");
    await expectRefused('t_dup', 'ADD UNIQUE KEY u_b (b)', /u_b|duplicate/i);
  });

  it('a narrowing type that would truncate', async () => {
    await seed('t_narrow');
    await conn.query("UPDATE t_narrow SET b = 'a value longer than five' WHERE id = 2999");
    await expectRefused('t_narrow', 'MODIFY b VARCHAR(5)', /\bb\b|truncat/i);
  });

  it('an integer narrowing that would go out of range', async () => {
    await seed('t_range');
    await expectRefused('t_range', 'MODIFY a TINYINT NOT NULL', /\ba\b|range/i);
  });

  it('NOT NULL over NULLs', async () => {
    await seed('t_nn');
    await conn.query('UPDATE t_nn SET b = NULL WHERE id = 1234');
    await expectRefused('t_nn', 'MODIFY b VARCHAR(40) NOT NULL', /\bb\b|null/i);
  });
});
