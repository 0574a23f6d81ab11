// Issue 18, "Also cover" (MySQL/MariaDB): real schemas' corner cases, each a whole job
// under a small write workload, the new table compared with the original (kept as the
// backup) and zero repaired chunks; or a refusal naming the problem and the fix.
//
// Why it is long (~430 lines): one case a schema corner, all sharing the file's
// database and its comparison helpers; docs/real-schemas-coverage.md indexes them.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, runAlter } from '../support/alter.js';
import { alterUnderWrites } from '../support/under-writes.js';
import { compareTables, formatDiffs } from '../support/compare.js';
import { DataLossError, PreflightError } from '../../src/util/errors.js';
import { MAX_QUEUED } from '../../src/dialects/mysql/mysql-change-stream.js';
import { openSession } from './helpers.js';

let url: string;
let conn: Connection;
let writer: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('cover')).url;
  conn = await mysqlConnect(url);
  writer = await mysqlConnect(url);
});
afterAll(async () => {
  await writer?.end();
  await conn?.end();
});

/** Partition names in order ([null] for a table without partitions). */
async function partitionsOf(table: string): Promise<unknown[]> {
  return (await rows('SELECT PARTITION_NAME AS p FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY PARTITION_ORDINAL_POSITION', [table])).map((r) => r.p);
}

/** Preview tables of partitioned tables still there. */
async function previews(): Promise<string[]> {
  return (await rows("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%\\_sspre%'")).map((r) => String(r.t));
}

async function rows(sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const [r] = await conn.query(sql, params);
  return r as Record<string, unknown>[];
}

/** The new table holds exactly the original's rows (over `columns`, default all shared), and nothing was repaired. */
async function expectSameData(table: string, backup: string | null, options: { columns?: string[]; keyColumns?: string[] } = {}): Promise<void> {
  expect(backup).toBeTruthy();
  const cmp = await compareTables(url, backup!, table, options);
  expect(cmp.equal, formatDiffs(cmp)).toBe(true);
  expect(cmp.rowsA).toBeGreaterThan(0);
}

describe('real schemas (MariaDB)', () => {
  it('refuses an --alter carrying a second statement after ";", naming it, and leaves everything as it was', async () => {
    await conn.query('CREATE TABLE semi (id INT PRIMARY KEY, n INT)');
    await conn.query('CREATE TABLE semi_victim (id INT PRIMARY KEY)');
    await conn.query('INSERT INTO semi VALUES (1, 1)');
    for (const alter of ['ADD COLUMN c INT; DROP TABLE semi_victim', 'ADD COLUMN c INT;DROP TABLE semi_victim;', "ADD COLUMN c VARCHAR(5) DEFAULT ';'; DROP TABLE semi_victim"]) {
      const err = await runAlter(url, 'semi', alter).then(() => null, (e: unknown) => e);
      expect(err, alter).toBeInstanceOf(PreflightError);
      expect((err as PreflightError).exitCode).toBe(3);
      expect((err as Error).message).toMatch(/more than one statement.*DROP TABLE semi_victim/);
    }
    expect((await rows("SHOW TABLES LIKE 'semi%'")).length).toBe(2);
    expect((await rows('SHOW COLUMNS FROM semi')).map((r) => r.Field)).toEqual(['id', 'n']);
    // A ';' inside a quoted literal is not a second statement.
    const r = await runAlter(url, 'semi', "ADD COLUMN c VARCHAR(5) NOT NULL DEFAULT ';'");
    expect(r.repairedChunks).toBe(0);
    expect(await rows('SELECT id, n, c FROM semi')).toEqual([{ id: 1, n: 1, c: ';' }]);
  });

  it('a table whose only key is a NOT NULL UNIQUE key, with binary logs rotated during the copy', async () => {
    await conn.query('CREATE TABLE uq_only (code VARCHAR(20) NOT NULL, n INT, note VARCHAR(40), UNIQUE KEY u_code (code))');
    await conn.query("INSERT INTO uq_only SELECT CONCAT('c-', LPAD(seq, 6, '0')), seq, CONCAT('n', seq) FROM seq_1_to_3000");
    const run = await alterUnderWrites(url, 'uq_only', 'ADD COLUMN extra INT NULL', async (i) => {
      const k = `c-${String((i * 37) % 3000 + 1).padStart(6, '0')}`;
      if (i % 25 === 0) await writer.query('FLUSH BINARY LOGS');
      else if (i % 5 === 0) await writer.query('DELETE FROM uq_only WHERE code = ?', [k]);
      else if (i % 5 === 1) await writer.query('INSERT INTO uq_only (code, n, note) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + 1', [`new-${i}`, i, 'ins']);
      else if (i % 5 === 2) await writer.query("UPDATE uq_only SET code = CONCAT(code, 'x') WHERE code = ?", [k]);
      else await writer.query('UPDATE uq_only SET n = n + 1, note = ? WHERE code = ?', [`u${i}`, k]);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('uq_only', run.result.backupTable, { keyColumns: ['code'] });
  });

  it('ENUM and SET columns reordered and extended', async () => {
    await conn.query("CREATE TABLE enums (id INT PRIMARY KEY, e ENUM('red', 'green', 'blue') NOT NULL, s SET('a', 'b', 'c') NULL, ek ENUM('x', 'y') NOT NULL, KEY (ek))");
    await conn.query("INSERT INTO enums SELECT seq, ELT(seq % 3 + 1, 'red', 'green', 'blue'), ELT(seq % 5 + 1, '', 'a', 'b,c', 'a,b,c', NULL), ELT(seq % 2 + 1, 'x', 'y') FROM seq_1_to_2000");
    const E = ['red', 'green', 'blue'];
    const S = ['', 'a', 'c', 'a,c', 'b', null];
    const run = await alterUnderWrites(
      url,
      'enums',
      "MODIFY e ENUM('blue', 'red', 'yellow', 'green') NOT NULL, MODIFY s SET('c', 'a', 'd', 'b') NULL, MODIFY ek ENUM('y', 'z', 'x') NOT NULL",
      async (i) => {
        const id = (i * 53) % 2000 + 1;
        if (i % 4 === 0) await writer.query('REPLACE INTO enums VALUES (?, ?, ?, ?)', [2000 + i, E[i % 3], S[i % 6], i % 2 ? 'x' : 'y']);
        else if (i % 4 === 1) await writer.query('DELETE FROM enums WHERE id = ?', [id]);
        else await writer.query('UPDATE enums SET e = ?, s = ?, ek = ? WHERE id = ?', [E[(i + 1) % 3], S[(i + 2) % 6], i % 3 ? 'y' : 'x', id]);
      },
      { chunkSize: 200 },
    );
    expect(run.result.repairedChunks).toBe(0);
    // A SET value lists its members in the definition's order (as a native ALTER does):
    // compare its members, and every other column as text.
    await expectSameData('enums', run.result.backupTable, { columns: ['id', 'e', 'ek'] });
    const members = async (t: string) => rows(`SELECT id, s IS NULL AS isnull, ${['a', 'b', 'c'].map((m) => `FIND_IN_SET('${m}', s) > 0 AS m_${m}`).join(', ')} FROM \`${t}\` ORDER BY id`);
    expect(await members('enums')).toEqual(await members(run.result.backupTable!));
    const [col] = await rows("SELECT COLUMN_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'enums' AND COLUMN_NAME = 'e'");
    expect(col!.t).toBe("enum('blue','red','yellow','green')");
  });

  it('4-byte characters and case-variant values in key columns (binary and case-insensitive collations)', async () => {
    await conn.query('CREATE TABLE k_bin (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, n INT)');
    await conn.query('CREATE TABLE k_ci (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL, sub INT NOT NULL, n INT, PRIMARY KEY (k, sub))');
    const words = ['a', 'A', 'b', 'B', 'straße', 'STRASSE', 'é', 'É', 'e', '😀', '😁', '𝒜', '𠜎', 'x😀y', 'X😀Y', '🙂a', '🙂A', 'ǅ', 'ǆ', 'Ǆ'];
    const binKeys: string[] = [];
    for (let i = 0; i < 1500; i++) binKeys.push(`${words[i % words.length]}${Math.floor(i / words.length)}`);
    await conn.query('INSERT INTO k_bin VALUES ?', [binKeys.map((k, i) => [k, i])]);
    // Case-insensitive: case variants compare equal, so they share k and differ in sub.
    await conn.query('INSERT INTO k_ci VALUES ?', [binKeys.map((k, i) => [k, i, i])]);
    const writeTo = (table: string) => async (i: number) => {
      const k = binKeys[(i * 31) % binKeys.length]!;
      if (i % 4 === 0) await writer.query(`INSERT INTO ${table} (k, ${table === 'k_ci' ? 'sub, ' : ''}n) VALUES (?, ${table === 'k_ci' ? '?, ' : ''}?)`, table === 'k_ci' ? [`${words[i % words.length]}n${i}`, i, i] : [`${words[i % words.length]}n${i}`, i]);
      else if (i % 4 === 1) await writer.query(`DELETE FROM ${table} WHERE k = ? LIMIT 1`, [k]);
      else if (i % 4 === 2) await writer.query(`UPDATE ${table} SET k = CONCAT(k, ?) WHERE k = ? LIMIT 1`, [words[(i + 3) % words.length], k]);
      else await writer.query(`UPDATE ${table} SET n = n + 1 WHERE k = ?`, [k]);
    };
    for (const table of ['k_bin', 'k_ci']) {
      const run = await alterUnderWrites(url, table, 'ADD COLUMN extra INT NULL', writeTo(table), { chunkSize: 100 });
      expect(run.result.repairedChunks).toBe(0);
      await expectSameData(table, run.result.backupTable);
      // compareTables matches keys by the table's collation; compare the stored bytes too.
      const image = async (t: string) => rows(`SELECT HEX(k) AS k, ${table === 'k_ci' ? 'sub, ' : ''}n FROM \`${t}\` ORDER BY HEX(k)${table === 'k_ci' ? ', sub' : ''}`);
      expect(await image(table)).toEqual(await image(run.result.backupTable!));
    }
  });

  it('a table with 300 columns', async () => {
    const cols = Array.from({ length: 299 }, (_, i) => (i % 3 === 0 ? `c${i} VARCHAR(8) NULL` : `c${i} INT NULL`));
    await conn.query(`CREATE TABLE wide (id INT PRIMARY KEY, ${cols.join(', ')})`);
    const vals = (id: number) => Array.from({ length: 299 }, (_, i) => (i % 3 === 0 ? `'${(id + i) % 1000}'` : (id * i) % 9973));
    for (let b = 0; b < 4; b++) await conn.query(`INSERT INTO wide VALUES ${Array.from({ length: 250 }, (_, j) => `(${b * 250 + j + 1}, ${vals(b * 250 + j + 1).join(', ')})`).join(', ')}`);
    const run = await alterUnderWrites(url, 'wide', 'ADD COLUMN c299 INT NULL, MODIFY c1 BIGINT NULL', async (i) => {
      const id = (i * 17) % 1000 + 1;
      if (i % 3 === 0) await writer.query(`INSERT INTO wide VALUES (${1000 + i + 1}, ${vals(i).join(', ')})`);
      else if (i % 3 === 1) await writer.query(`UPDATE wide SET c${i % 299} = NULL, c${(i + 1) % 299} = ${i % 3 === 0 ? `'${i}'` : 'NULL'}, c298 = ${i} WHERE id = ${id}`);
      else await writer.query(`DELETE FROM wide WHERE id = ${id}`);
    }, { chunkSize: 100 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('wide', run.result.backupTable);
    expect((await rows("SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'wide'"))[0]!.n).toBe('301');
  });

  it('JSON columns (MariaDB: LONGTEXT checked by JSON_VALID)', async () => {
    await conn.query('CREATE TABLE docs (id INT PRIMARY KEY, j JSON NOT NULL, k JSON NULL)');
    await conn.query(`INSERT INTO docs SELECT seq, JSON_OBJECT('n', seq, 's', CONCAT('ü€😀', seq), 'a', JSON_ARRAY(seq, 1.5, NULL, TRUE)), IF(seq % 4 = 0, NULL, '{"x": [1, {"y": "z"}]}') FROM seq_1_to_2000`);
    const run = await alterUnderWrites(url, 'docs', 'ADD COLUMN tag VARCHAR(10) NULL, MODIFY k JSON NULL', async (i) => {
      const id = (i * 41) % 2000 + 1;
      if (i % 3 === 0) await writer.query("UPDATE docs SET j = JSON_SET(j, '$.n', ?, '$.w', ?) WHERE id = ?", [i, `"q'uote\\\\ ${i}`, id]);
      else if (i % 3 === 1) await writer.query('INSERT INTO docs VALUES (?, ?, ?)', [3000 + i, JSON.stringify({ big: 'x'.repeat(i % 500), e: '😀', nested: { a: [i, null] } }), i % 2 ? null : '[]']);
      else await writer.query('DELETE FROM docs WHERE id = ?', [id]);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('docs', run.result.backupTable);
  });

  it('generated columns, stored and virtual, added and changed', async () => {
    await conn.query('CREATE TABLE gen (id INT PRIMARY KEY, a INT NOT NULL, b INT NOT NULL, v INT AS (a + b) VIRTUAL, s INT AS (a * b) STORED, KEY (v))');
    await conn.query('INSERT INTO gen (id, a, b) SELECT seq, seq, seq % 7 FROM seq_1_to_2000');
    const run = await alterUnderWrites(
      url,
      'gen',
      'ADD COLUMN d INT AS (a - b) STORED, ADD COLUMN w INT AS (a * 2) VIRTUAL, MODIFY v INT AS (a + b + 1) VIRTUAL, MODIFY s BIGINT AS (a * b * 10) STORED',
      async (i) => {
        const id = (i * 29) % 2000 + 1;
        if (i % 3 === 0) await writer.query('INSERT INTO gen (id, a, b) VALUES (?, ?, ?)', [3000 + i, i, i % 11]);
        else if (i % 3 === 1) await writer.query('UPDATE gen SET a = a + 1, b = b + 2 WHERE id = ?', [id]);
        else await writer.query('DELETE FROM gen WHERE id = ?', [id]);
      },
      { chunkSize: 200 },
    );
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('gen', run.result.backupTable, { columns: ['id', 'a', 'b'] });
    expect(await rows('SELECT COUNT(*) AS n FROM gen WHERE NOT (v <=> a + b + 1 AND s <=> a * b * 10 AND d <=> a - b AND w <=> a * 2)')).toEqual([{ n: '0' }]);
  });

  it('multi-megabyte BLOBs', async () => {
    await conn.query('CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB NULL, n INT)');
    // 3 MB per row.
    await conn.query("INSERT INTO blobs SELECT seq, REPEAT(UNHEX(SHA2(seq, 512)), 3 * 1024 * 1024 DIV 64), seq FROM seq_1_to_4");
    const run = await alterUnderWrites(url, 'blobs', 'ADD COLUMN tag INT NULL', async (i) => {
      const id = (i % 4) + 1;
      if (i % 3 === 0) await writer.query('UPDATE blobs SET b = REPEAT(UNHEX(SHA2(?, 512)), 2 * 1024 * 1024 DIV 64 + ?) WHERE id = ?', [`w${i}`, i, id]);
      else if (i % 3 === 1) await writer.query('UPDATE blobs SET n = n + 1 WHERE id = ?', [id]);
      else await writer.query('INSERT INTO blobs VALUES (?, REPEAT(UNHEX(SHA2(?, 512)), 1024 * 1024 DIV 64 + 3), ?)', [100 + i, `i${i}`, i]);
    }, { chunkSize: 2, writesWhilePostponed: 4 });
    expect(run.result.repairedChunks).toBe(0);
    const image = async (t: string) => rows(`SELECT id, LENGTH(b) AS len, SHA2(b, 256) AS h, n FROM \`${t}\` ORDER BY id`);
    const after = await image('blobs');
    expect(after).toEqual(await image(run.result.backupTable!));
    expect(after.some((r) => Number(r.len) > 2 * 1024 * 1024)).toBe(true);
  });

  it('the key column\'s collation made finer (utf8mb4_general_ci → utf8mb4_bin): mixed-case keys, their case changed by updates', async () => {
    await conn.query('CREATE TABLE k_finer (k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, n INT)');
    // One case variant of each value can exist under _ci; which one differs row to row.
    const spell = (i: number) => [`abc${i}`, `ABC${i}`, `Abc${i}`, `aBc${i}`, `straße${i}`, `STRASSE${i}`, `é${i}`, `É${i}`][i % 8]!;
    await conn.query('INSERT INTO k_finer VALUES ?', [Array.from({ length: 2000 }, (_, i) => [spell(i), i])]);
    const flip = (k: string) => (k === k.toUpperCase() ? k.toLowerCase() : k.toUpperCase());
    let recased = 0;
    const run = await alterUnderWrites(url, 'k_finer', 'MODIFY k VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL', async (i) => {
      // Each statement names its row in another case than stored: they match under _ci.
      const k = flip(spell((i * 37) % 2000));
      if (i % 4 === 0) {
        const [r] = await writer.query('UPDATE k_finer SET k = IF(BINARY k = BINARY UPPER(k), LOWER(k), UPPER(k)) WHERE k = ?', [k]);
        recased += (r as { changedRows: number }).changedRows;
      } else if (i % 4 === 1) await writer.query('INSERT INTO k_finer VALUES (?, ?) ON DUPLICATE KEY UPDATE k = VALUES(k), n = n + 1', [i % 8 === 1 ? k : `${spell(i)}new`, i]);
      else if (i % 4 === 2) await writer.query('UPDATE k_finer SET n = n + 1 WHERE k = ?', [k]);
      else await writer.query('DELETE FROM k_finer WHERE k = ?', [flip(spell((i * 11) % 2000))]);
    }, { chunkSize: 100 });
    expect(recased).toBeGreaterThan(0);
    expect(run.result.repairedChunks).toBe(0);
    const image = async (t: string) => rows(`SELECT HEX(k) AS k, n FROM \`${t}\` ORDER BY HEX(k)`);
    const after = await image('k_finer');
    expect(after).toEqual(await image(run.result.backupTable!));
    expect(after.length).toBeGreaterThan(1000);
    const [col] = await rows("SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'k_finer' AND COLUMN_NAME = 'k'");
    expect(col!.c).toBe('utf8mb4_bin');
  });

  it('the key column\'s collation made coarser (utf8mb4_bin → utf8mb4_general_ci): never the copy key; another key copies, or preflight refuses', async () => {
    const TO_CI = 'MODIFY code VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL';
    const tables = async () => (await rows("SHOW TABLES LIKE 'coarse%'")).map((r) => String(Object.values(r)[0])).sort();
    const state = async (t: string) => ({ create: (await rows(`SHOW CREATE TABLE \`${t}\``))[0]!['Create Table'], data: await rows(`SELECT HEX(code) AS code, id, n FROM \`${t}\` ORDER BY HEX(code)`) });
    // The only NOT NULL unique key weakened (the PRIMARY KEY case: test/mysql/weakened-keys.test.ts).
    await conn.query('CREATE TABLE coarse_uq (code VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, id INT NULL, n INT, UNIQUE KEY u_code (code))');
    await conn.query("INSERT INTO coarse_uq VALUES ('abc', 1, 1), ('ABC', 2, 2), ('x', 3, 3)");
    const before = await state('coarse_uq');
    const refused = await runAlter(url, 'coarse_uq', TO_CI).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(PreflightError);
    expect((refused as PreflightError).exitCode).toBe(3);
    expect((refused as Error).message).toContain('the ALTER changes how code compares (collation utf8mb4_bin → utf8mb4_general_ci), so u_code is a new unique key and cannot be the copy key');
    expect(await state('coarse_uq')).toEqual(before);
    expect(await tables()).toEqual(['coarse_uq']);

    // The PRIMARY KEY weakened, a NOT NULL unique key left: the copy walks that one, and
    // the case variants the original holds are a duplicate of the new PRIMARY KEY.
    await conn.query('CREATE TABLE coarse_pk (code VARCHAR(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, id INT NOT NULL, n INT, UNIQUE KEY u_id (id))');
    await conn.query("INSERT INTO coarse_pk SELECT CONCAT(IF(seq % 2, 'k', 'K'), seq), seq, seq FROM seq_1_to_1000");
    await conn.query("INSERT INTO coarse_pk VALUES ('k2', 2000, 0)");
    const job = newJob(url, 'coarse_pk', TO_CI);
    let failed: unknown;
    try {
      const report = await job.prepare();
      expect(report.key).toEqual([{ source: 'id', target: 'id' }]);
      expect(report.weakenedUniqueIndexes).toEqual([{ name: 'PRIMARY', originalName: 'PRIMARY', change: 'how code compares (collation utf8mb4_bin → utf8mb4_general_ci)' }]);
      failed = await job.execute(report).then(() => null, (e: unknown) => e);
    } finally {
      await job.close();
    }
    expect(failed).toBeInstanceOf(DataLossError);
    expect((failed as Error).message).toMatch(/unique key PRIMARY would hold the same value twice in the new table \('k2'; the row id=2000 collides with the row id=2\)/);
    expect((failed as Error).message).toContain('the ALTER changes how code compares (collation utf8mb4_bin → utf8mb4_general_ci)');
    expect(await tables()).toEqual(['coarse_pk', 'coarse_uq']);
    expect((await rows("SELECT COUNT(*) AS n FROM coarse_pk WHERE code IN ('k2', 'K2')"))).toEqual([{ n: '2' }]);

    // Without case variants the same ALTER migrates under writes, copied by u_id.
    await conn.query("DELETE FROM coarse_pk WHERE id = 2000");
    const run = await alterUnderWrites(url, 'coarse_pk', TO_CI, async (i) => {
      const id = (i * 37) % 1000 + 1;
      if (i % 4 === 0) await writer.query('INSERT INTO coarse_pk VALUES (?, ?, ?)', [`New${i}`, 100000 + i, i]); // above every moved id (at most 11001), however long the job runs
      else if (i % 4 === 1) await writer.query("UPDATE coarse_pk SET code = CONCAT(code, 'u') WHERE id = ?", [id]);
      else if (i % 4 === 2) await writer.query('UPDATE coarse_pk SET n = n + 1, id = id + 10000 WHERE id = ?', [id + 1]);
      else await writer.query('DELETE FROM coarse_pk WHERE id = ?', [id + 2]);
    }, { chunkSize: 100 });
    expect(run.result.repairedChunks).toBe(0);
    expect((await state('coarse_pk')).data).toEqual((await state(run.result.backupTable!)).data);
  });

  it('a 100k-row single transaction (INSERT ... SELECT, then one UPDATE of those rows) committed mid-copy', async () => {
    await conn.query('CREATE TABLE bulk (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(20) NULL)');
    await conn.query("INSERT INTO bulk SELECT seq, seq, CONCAT('s', seq) FROM seq_1_to_20000");
    let chunks = 0;
    let bulkWritten = false;
    // Inside the fifth chunk's transaction, so the copy is under way before and after. The
    // new rows are above the copy's ceiling and away from the chunk's locks: they reach the
    // shadow through the stream only, as 100k inserts and 100k updates.
    const bulk = async () => {
      await writer.query('BEGIN');
      await writer.query("INSERT INTO bulk SELECT 100000 + seq, seq, CONCAT('b', seq) FROM seq_1_to_100000");
      await writer.query("UPDATE bulk SET n = -n, note = CONCAT(note, 'u') WHERE id > 100000");
      await writer.query('COMMIT');
      bulkWritten = true;
    };
    const job = newJob(url, 'bulk', 'ADD COLUMN extra INT NULL', {
      chunkSize: 200,
      testHooks: { beforeChunkCommit: async () => void (++chunks === 5 && (await bulk())) },
    });
    let maxBacklog = 0;
    const sampler = setInterval(() => (maxBacklog = Math.max(maxBacklog, job.status().backlog)), 10);
    let result: Awaited<ReturnType<typeof job.execute>>;
    try {
      const report = await job.prepare();
      result = await job.execute(report);
      expect(job.status().eventsApplied).toBeGreaterThanOrEqual(200_000);
    } finally {
      clearInterval(sampler);
      await job.close();
    }
    expect(bulkWritten).toBe(true);
    expect(result.rowsCopied).toBeLessThanOrEqual(20_000);
    expect(result.repairedChunks).toBe(0);
    await expectSameData('bulk', result.backupTable);
    expect(await rows('SELECT COUNT(*) AS n, SUM(n < 0) AS neg FROM bulk')).toEqual([{ n: '120000', neg: '100000' }]);
    // The stream holds at most its queue's bound of decoded events (then the binlog connection
    // is paused), whatever the size of the transaction; a read packet's rows may overshoot it.
    expect(maxBacklog).toBeLessThanOrEqual(MAX_QUEUED + 10_000);
  }, 120_000);

  it('a partitioned table: copied whole into a shadow with the same partitioning', async () => {
    await conn.query('CREATE TABLE parts (id INT NOT NULL, n INT, PRIMARY KEY (id)) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (1000), PARTITION p1 VALUES LESS THAN (2000), PARTITION pmax VALUES LESS THAN MAXVALUE)');
    await conn.query('INSERT INTO parts SELECT seq, seq FROM seq_1_to_2500');
    const run = await alterUnderWrites(url, 'parts', 'ADD COLUMN extra INT NULL', async (i) => {
      const id = (i * 37) % 2500 + 1;
      if (i % 3 === 0) await writer.query('INSERT INTO parts VALUES (?, ?)', [100000 + i, i]);
      else if (i % 3 === 1) await writer.query('UPDATE parts SET id = id + 1000000, n = n + 1 WHERE id = ?', [id]);
      else await writer.query('DELETE FROM parts WHERE id = ?', [id]);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('parts', run.result.backupTable);
    expect(await partitionsOf('parts')).toEqual(['p0', 'p1', 'pmax']);
    expect(await previews()).toEqual([]);
  });

  it('PARTITION BY on a plain table, then REMOVE PARTITIONING: rebuilt through the shadow', async () => {
    await conn.query('CREATE TABLE plain (id INT NOT NULL PRIMARY KEY, n INT)');
    await conn.query('INSERT INTO plain SELECT seq, seq FROM seq_1_to_2000');
    const run = await alterUnderWrites(url, 'plain', 'ADD COLUMN extra INT NULL PARTITION BY HASH (id) PARTITIONS 4', async (i) => {
      const id = (i * 41) % 2000 + 1;
      if (i % 3 === 0) await writer.query('INSERT INTO plain VALUES (?, ?)', [100000 + i, i]);
      else if (i % 3 === 1) await writer.query('UPDATE plain SET id = id + 1000000, n = n + 1 WHERE id = ?', [id]);
      else await writer.query('DELETE FROM plain WHERE id = ?', [id]);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('plain', run.result.backupTable, { columns: ['id', 'n'] });
    expect(await partitionsOf('plain')).toEqual(['p0', 'p1', 'p2', 'p3']);
    const back = await runAlter(url, 'plain', 'REMOVE PARTITIONING');
    await expectSameData('plain', back.backupTable);
    expect(await partitionsOf('plain')).toEqual([null]);
    expect(await previews()).toEqual([]);
  });

  it('refuses partition maintenance at preflight, naming the clause, and runs none of it', async () => {
    await conn.query('CREATE TABLE pm (id INT NOT NULL PRIMARY KEY, n INT) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200), PARTITION pmax VALUES LESS THAN MAXVALUE)');
    await conn.query('CREATE TABLE pm_swap (id INT NOT NULL PRIMARY KEY, n INT)');
    await conn.query('INSERT INTO pm SELECT seq, seq FROM seq_1_to_300');
    await conn.query('INSERT INTO pm_swap VALUES (7, -7)');
    const clauses = [
      'DROP PARTITION p0',
      'TRUNCATE PARTITION p1',
      'ADD PARTITION (PARTITION p9 VALUES LESS THAN (900))',
      'EXCHANGE PARTITION p0 WITH TABLE pm_swap WITHOUT VALIDATION',
      'REORGANIZE PARTITION pmax INTO (PARTITION p2 VALUES LESS THAN (300), PARTITION pmax VALUES LESS THAN MAXVALUE)',
      'COALESCE PARTITION 1',
      'OPTIMIZE PARTITION p1',
      'CONVERT PARTITION p0 TO TABLE pm_out',
      'ENGINE=InnoDB TRUNCATE PARTITION ALL',
    ];
    for (const alter of clauses) {
      const err = await runAlter(url, 'pm', alter).then(() => null, (e: unknown) => e);
      expect(err, alter).toBeInstanceOf(PreflightError);
      expect((err as PreflightError).exitCode).toBe(3);
      // From the verb on, cut at 80 characters.
      const shown = alter.replace(/^ENGINE=InnoDB /, '').slice(0, 60);
      expect((err as Error).message, alter).toContain(`no-partition-maintenance: the ALTER maintains partitions ("${shown}`);
      expect((err as PreflightError).failures.map((f) => f.check)).toEqual(['no-partition-maintenance']);
      expect((err as Error).message).toMatch(/Run it as a plain ALTER TABLE/);
    }
    expect(await partitionsOf('pm')).toEqual(['p0', 'p1', 'pmax']);
    expect(Number((await rows('SELECT COUNT(*) AS n FROM pm'))[0]!.n)).toBe(300);
    expect(await rows('SELECT * FROM pm_swap')).toEqual([{ id: 7, n: -7 }]);
    expect(await rows("SHOW TABLES LIKE 'pm%'")).toHaveLength(2);
    expect(await previews()).toEqual([]);
  });

  it("a partitioned table's preview is a real table, dropped on every path; cleanup finds one a crash left", async () => {
    await conn.query('CREATE TABLE pv (id INT NOT NULL PRIMARY KEY, n INT) PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION pmax VALUES LESS THAN MAXVALUE)');
    await conn.query('INSERT INTO pv SELECT seq, seq FROM seq_1_to_200');
    // The ALTER fails on the preview: the server's reason, and nothing left.
    for (const [alter, reason] of [
      ['ADD COLUMN n INT', /Duplicate column name 'n'/],
      // Only a partitioned preview shows it: the key must cover the partitioning column.
      ['DROP PRIMARY KEY, ADD PRIMARY KEY (n)', /PRIMARY KEY must include all columns in the table's partitioning function/],
    ] as const) {
      const err = await runAlter(url, 'pv', alter).then(() => null, (e: unknown) => e);
      expect((err as Error)?.message, alter).toMatch(/the server refused the ALTER on pv/);
      expect((err as Error).message).toMatch(reason);
      expect(await previews()).toEqual([]);
    }
    // A preview only (no --execute), and a whole job.
    const job = newJob(url, 'pv', 'ADD COLUMN extra INT NULL');
    try {
      expect((await job.prepare()).ok).toBe(true);
    } finally {
      await job.close();
    }
    expect(await previews()).toEqual([]);
    const done = await runAlter(url, 'pv', 'ADD COLUMN extra INT NULL');
    await expectSameData('pv', done.backupTable, { columns: ['id', 'n'] });
    expect(await previews()).toEqual([]);

    // A run that died during its preview left pv_sspre_<its connection id>.
    await conn.query('CREATE TABLE pv_sspre_4242 LIKE pv');
    const session = await openSession(url);
    try {
      const left = async () => (await session.listLeftovers()).filter((l) => l.kind === 'preview');
      expect(await left()).toEqual([{ kind: 'preview', name: 'pv_sspre_4242', table: { schema: expect.any(String), name: 'pv' }, inUse: false }]);
      // While that run's connection is alive (its lock held), the preview is in use.
      await writer.query("DO GET_LOCK('shadowshift-preview:4242', 0)");
      expect((await left())[0]!.inUse).toBe(true);
      await writer.query("DO RELEASE_LOCK('shadowshift-preview:4242')");
      const err = await runAlter(url, 'pv', 'ADD COLUMN more INT NULL').then(() => null, (e: unknown) => e);
      expect((err as PreflightError).exitCode).toBe(3);
      expect((err as Error).message).toMatch(/no-leftovers: an earlier job on \S+pv left preview table pv_sspre_4242. Run `shadowshift cleanup --execute`/);
      for (const l of await left()) await session.removeLeftover(l);
      expect(await previews()).toEqual([]);
    } finally {
      await session.close();
    }
  });
});
