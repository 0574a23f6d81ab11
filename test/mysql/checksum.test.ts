// The checksummer: equal tables compare equal on one snapshot, a changed shadow row is
// found, recopy() repairs it; writes wait only for the drain. The verifier on top of
// it reports every repair: a warning naming the range and both row counts, and the
// job's running totals. Its ranges are open at both ends, so rows beyond the
// original's key bounds as read before the snapshot are compared and recopied.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { RowCopier } from '../../src/dialects/dialect.js';
import { comparedColumns } from '../../src/dialects/mysql/mysql-checksum.js';
import { freshDb, prepareShadow } from './helpers.js';
import { ChecksumTally, verifyShadow } from '../../src/engine/verifier.js';
import { capturingLogger } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;

beforeAll(async () => {
  ({ session, admin, name: schema } = await freshDb('cks'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('checksummer', () => {
  it('finds a differing row and recopy repairs it', async () => {
    await admin.query("CREATE TABLE ck (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1, b VARBINARY(8), d DECIMAL(10,2), n INT)");
    await admin.query(`INSERT INTO ck SELECT seq, CONCAT('é', seq), UNHEX(HEX(seq)), seq / 7, IF(seq % 3 = 0, NULL, seq) FROM ${mysqlSeq(1, 300)}`);
    const { plan, names } = await prepareShadow(session, schema, 'ck', 'MODIFY d DECIMAL(12,4), CONVERT TO CHARACTER SET utf8mb4');
    // d changed type: hashed as the original's value cast to DECIMAL(12,4), the shadow's text.
    expect(comparedColumns(plan).map((c) => c.source)).toEqual(['id', 's', 'b', 'd', 'n']);
    await session.copier.copyChunk(plan, { after: null, upTo: [300] });
    let drained = 0;
    const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => void drained++ });
    expect(drained).toBe(1);
    expect(await view.compare({ after: null, upTo: [300] })).toEqual({ same: true, originalRows: 300, shadowRows: 300 });
    await view.close();

    await admin.query(`UPDATE \`${names.shadow}\` SET n = NULL WHERE id = 100`); // NULL vs value
    await admin.query(`UPDATE \`${names.shadow}\` SET b = CONCAT(b, X'00') WHERE id = 200`); // a trailing zero byte
    await admin.query(`DELETE FROM \`${names.shadow}\` WHERE id = 250`);
    const v2 = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    expect((await v2.compare({ after: null, upTo: [50] })).same).toBe(true);
    expect(await v2.compare({ after: [50], upTo: [150] })).toMatchObject({ same: false, originalRows: 100, shadowRows: 100 });
    expect((await v2.compare({ after: [150], upTo: [220] })).same).toBe(false);
    expect(await v2.compare({ after: [220], upTo: [300] })).toMatchObject({ same: false, originalRows: 80, shadowRows: 79 });
    expect(await v2.compare({ after: null, upTo: null })).toEqual({ same: false, originalRows: 300, shadowRows: 299 });
    await v2.close();
    await session.checksummer.recopy(plan, { after: null, upTo: [300] });
    const v3 = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    expect((await v3.compare({ after: null, upTo: [300] })).same).toBe(true);
    expect(await v3.compare({ after: null, upTo: null })).toEqual({ same: true, originalRows: 300, shadowRows: 300 });
    await v3.close();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('the snapshot is the moment of the lock: later writes to the original do not show', async () => {
    await admin.query('CREATE TABLE ck2 (id INT PRIMARY KEY, v INT)');
    await admin.query('INSERT INTO ck2 VALUES (1, 1), (2, 2)');
    const { plan, names } = await prepareShadow(session, schema, 'ck2', 'ADD COLUMN w INT');
    await session.copier.copyChunk(plan, { after: null, upTo: [2] });
    const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    await admin.query('UPDATE ck2 SET v = 5 WHERE id = 1'); // not blocked any more, and not seen by the view
    expect((await view.compare({ after: null, upTo: [2] })).same).toBe(true);
    await view.close();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('rows that differ only in where a NULL, an empty string or a separator sits hash differently', async () => {
    await admin.query('CREATE TABLE ck_img (id INT PRIMARY KEY, a VARCHAR(10), b VARCHAR(10))');
    const pairs: Array<[string | null, string | null, string | null, string | null]> = [
      [null, 'x', 'x', null],
      ['', 'x', null, 'x'],
      ['1#x', null, '1', '#x'],
      ['2', '#3#', '2#3', '#'],
      ['-', null, null, '-'],
    ];
    await admin.query('INSERT INTO ck_img VALUES ' + pairs.map((_, i) => `(${i + 1}, ?, ?)`).join(', '), pairs.flatMap(([a, b]) => [a, b]));
    const { plan, names } = await prepareShadow(session, schema, 'ck_img', 'ADD COLUMN w INT');
    await session.copier.copyChunk(plan, { after: null, upTo: [pairs.length] });
    const same = async (id: number) => {
      const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
      try {
        return (await view.compare({ after: [id - 1], upTo: [id] })).same;
      } finally {
        await view.close();
      }
    };
    for (const [i, [, , a, b]] of pairs.entries()) {
      expect(await same(i + 1)).toBe(true);
      await admin.query(`UPDATE \`${names.shadow}\` SET a = ?, b = ? WHERE id = ?`, [a, b, i + 1]);
      expect(await same(i + 1), `row ${i + 1}: (${JSON.stringify(pairs[i]!.slice(0, 2))}) against (${JSON.stringify([a, b])})`).toBe(false);
    }
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('the verifier reports each repaired chunk with its range and row counts, and keeps totals over its runs', async () => {
    await admin.query('CREATE TABLE ck3 (id INT PRIMARY KEY, v INT)');
    await admin.query(`INSERT INTO ck3 SELECT seq, seq FROM ${mysqlSeq(1, 3000)}`);
    const { plan, names } = await prepareShadow(session, schema, 'ck3', 'ADD COLUMN w INT');
    await session.copier.copyChunk(plan, { after: null, upTo: [3000] });
    await admin.query(`DELETE FROM \`${names.shadow}\` WHERE id IN (1500, 1501)`);
    await admin.query(`UPDATE \`${names.shadow}\` SET v = 0 WHERE id = 2999`);
    const { log, lines } = capturingLogger();
    const tally = new ChecksumTally();
    const verify = () =>
      verifyShadow({ checksummer: session.checksummer, copier: session.copier, plan, chunkSize: 1000, lockTimeoutMs: 2000, drainUnderLock: async () => undefined, log, tally });
    expect(await verify()).toEqual({ chunks: 4, repaired: 2 });
    const warned = lines.filter((l) => l.level === 40);
    expect(warned.map((l) => [l.range, l.originalRows, l.shadowRows])).toEqual([
      ['key range (1000) < key <= (2000)', 1000, 998],
      ['key range (2000) < key <= +inf', 1000, 1000],
      [undefined, undefined, undefined],
    ]);
    expect(warned[0]!.msg).toMatch(/^checksum: repaired key range \(1000\) < key <= \(2000\) \(original 1000 rows, shadow 998 rows\) by copying it again\. A repair means the change stream or the copy missed a change/);
    // Even the run's summary is a warning when it repaired anything.
    expect(warned[2]!.msg).toBe('checksum: original and shadow match after 2 repair(s); see the warnings above and report them');
    expect(await verify()).toEqual({ chunks: 1, repaired: 0 });
    expect({ ...tally }).toEqual({ runs: 2, chunksCompared: 5, repairedChunks: 2 });
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it("the ranges are open at both ends: rows beyond the original's key bounds are compared and recopied, and an empty original is compared too", async () => {
    await admin.query('CREATE TABLE ck4 (id INT PRIMARY KEY, v INT)');
    await admin.query(`INSERT INTO ck4 SELECT seq, seq FROM ${mysqlSeq(1, 3000)}`);
    const { plan, names } = await prepareShadow(session, schema, 'ck4', 'ADD COLUMN w INT');
    await session.copier.copyChunk(plan, { after: null, upTo: [3000] });
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, v) VALUES (0, 0)`); // below the smallest key
    await admin.query(`DELETE FROM \`${names.shadow}\` WHERE id = 2995`);
    // The ranges are cut outside the snapshot: here the original's largest keys are
    // deleted after the snapshot and before its bounds are read, so row 2995, which
    // the snapshot sees in the original only, lies above the bounds as read.
    const copier: RowCopier = {
      keyBounds: async (p) => {
        await admin.query('DELETE FROM ck4 WHERE id > 2990');
        return session.copier.keyBounds(p);
      },
      chunkEnd: (...a) => session.copier.chunkEnd(...a),
      copyChunk: (...a) => session.copier.copyChunk(...a),
    };
    const { log, lines } = capturingLogger();
    const verify = (c: RowCopier) => verifyShadow({ checksummer: session.checksummer, copier: c, plan, chunkSize: 1000, lockTimeoutMs: 2000, drainUnderLock: async () => undefined, log });
    expect(await verify(copier)).toEqual({ chunks: 4, repaired: 2 });
    expect(lines.filter((l) => l.level === 40 && l.range).map((l) => [l.range, l.originalRows, l.shadowRows])).toEqual([
      ['key range -inf < key <= (1000)', 1000, 1001],
      ['key range (2000) < key <= +inf', 1000, 999],
    ]);
    // Recopied from the original as it is now, without its rows above 2990.
    const [shadowIds] = await admin.query<RowDataPacket[]>(`SELECT MIN(id) AS lo, MAX(id) AS hi, COUNT(*) AS n FROM \`${names.shadow}\``);
    expect([shadowIds[0]!.lo, shadowIds[0]!.hi, shadowIds[0]!.n].map(Number)).toEqual([1, 2990, 2990]);
    await session.dropArtefacts(names, { keepBackup: false });

    await admin.query('CREATE TABLE ck5 (id INT PRIMARY KEY, v INT)');
    const empty = await prepareShadow(session, schema, 'ck5', 'ADD COLUMN w INT');
    await admin.query(`INSERT INTO \`${empty.names.shadow}\` (id, v) VALUES (7, 7)`);
    lines.length = 0;
    expect(await verifyShadow({ checksummer: session.checksummer, copier: session.copier, plan: empty.plan, chunkSize: 1000, lockTimeoutMs: 2000, drainUnderLock: async () => undefined, log })).toEqual({ chunks: 2, repaired: 1 });
    expect(lines.filter((l) => l.level === 40 && l.range).map((l) => [l.range, l.originalRows, l.shadowRows])).toEqual([['key range -inf < key <= +inf', 0, 1]]);
    const [left] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${empty.names.shadow}\``);
    expect(Number(left[0]!.n)).toBe(0);
    await session.dropArtefacts(empty.names, { keepBackup: false });
  });
});

describe('checksummer keeping the shadow\'s other columns (a revert)', () => {
  it('recopy of a range changes rows in place, deletes rows gone from the original, and keeps the other columns', async () => {
    await admin.query('CREATE TABLE ckk (id INT PRIMARY KEY, s VARCHAR(20) NOT NULL)');
    await admin.query(`INSERT INTO ckk SELECT seq, CONCAT('s', seq) FROM ${mysqlSeq(1, 50)}`);
    const { plan: built, names } = await prepareShadow(session, schema, 'ckk', 'ADD COLUMN x INT NOT NULL DEFAULT 0');
    const plan = { ...built, keepsOtherColumns: true };
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, s, x) SELECT id, s, id * 10 FROM ckk`);
    await admin.query(`UPDATE \`${names.shadow}\` SET s = 'stale' WHERE id IN (5, 45)`);
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, s, x) VALUES (51, 'gone', 510)`);
    await admin.query("INSERT INTO ckk VALUES (52, 'new')");
    await session.checksummer.recopy(plan, { after: [40], upTo: null });
    await session.checksummer.recopy(plan, { after: null, upTo: [40] });
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT id, s, x FROM \`${names.shadow}\` WHERE id IN (5, 45, 51, 52) OR x <> id * 10 ORDER BY id`);
    expect(rows).toEqual([
      { id: 5, s: 's5', x: 50 },
      { id: 45, s: 's45', x: 450 },
      { id: 52, s: 'new', x: 0 },
    ]);
  });
});
