// The pre-cut-over checksum compares rows as they print: values that are equal but
// print differently (-0 and 0, 1.0 and 1.00, json spacing) differ; NaN, emoji, bytea,
// arrays and json compare exactly; the columns hashed by their type's own hash function
// still differ on every change, case under a nondeterministic collation included; the key is part of every row's
// image, so values moved between rows differ; original and shadow are read on one
// snapshot taken under the lock, even though two connections read them. The
// verifier on top reports every repair: a warning naming the range and both row
// counts, and the job's running totals. It compares the whole tables first, and cuts
// key ranges only when that differs; those ranges are open at both ends, so rows
// beyond the original's key bounds as read outside the snapshot are compared and
// recopied.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ArtefactNames, Checksummer, CopyPlan, KeyRange, RowCopier } from '../../src/dialects/dialect.js';
import { freshDb, makePlan } from './helpers.js';
import { pgConnect } from '../support/databases.js';
import { capturingLogger } from '../support/alter.js';
import { ChecksumTally, verifyShadow, type VerifyOptions } from '../../src/engine/verifier.js';

let admin: pg.Client;
let session: PostgresSession;
let observer: pg.Client;

beforeAll(async () => {
  let url: string;
  ({ admin, session, url } = await freshDb('pgcksum'));
  observer = await pgConnect(url);
});
afterAll(async () => {
  await session?.close();
  await observer?.end();
  await admin?.end();
});

async function shadowOf(table: string, alter: string, jobId: string): Promise<{ plan: CopyPlan; names: ArtefactNames }> {
  const original = (await session.inspectTable({ schema: 'public', name: table }))!;
  const names = session.artefactNames(original.ref, jobId);
  const shadow = await session.createShadow(original, alter, names);
  const plan = makePlan(original, shadow, session.analyzeAlter(alter));
  return { plan, names };
}

async function compare(plan: CopyPlan, ranges: KeyRange[]): Promise<Array<{ same: boolean; originalRows: number; shadowRows: number }>> {
  const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
  try {
    const out = [];
    for (const r of ranges) out.push(await view.compare(r));
    return out;
  } finally {
    await view.close();
  }
}

/** The verifier on this session's checksummer and copier, with no stream to drain; `more` replaces any of its options. */
function verifyOn(plan: CopyPlan, log: VerifyOptions['log'], more: Partial<VerifyOptions> = {}) {
  return verifyShadow({ checksummer: session.checksummer, copier: session.copier, plan, chunkSize: 1000, lockTimeoutMs: 2000, drainUnderLock: async () => undefined, log, ...more });
}

describe('checksum: exact values', () => {
  it('finds values that are equal but print differently, and nothing else', async () => {
    await admin.query(`CREATE TABLE ex (id int PRIMARY KEY, small int, f float8, r real, n numeric, t text, b bytea, a int[], j json, jb jsonb, ts timestamptz)`);
    await admin.query(`INSERT INTO ex VALUES
      (1, 1, 'NaN', 'NaN', 'NaN', 'grüße 😀 🇩🇪', '\\x00ff10', '{1,NULL,3}', '{"a": 1, "b": [1, 2]}', '{"b": 2, "a": 1}', '2024-02-29 12:34:56.123456+00'),
      (2, 2, '-0', '-0', '1.0', '', '\\x', '{}', 'null', '[]', 'infinity'),
      (3, NULL, 'Infinity', '1.17549435e-38', '-0.000000000000000000001', NULL, NULL, NULL, NULL, NULL, NULL),
      (4, 4, 0.1, 0.1, 123456789012345678901234567890.123456789, 'tab\tnewline\nquote"backslash\\', '\\x5c22', '{{1,2},{3,4}}', '"x"', '{"k": "😀"}', '1999-12-31 23:59:59.999999-08')`);
    // A type change on the way: the original's values are cast as the copy cast them.
    const { plan, names } = await shadowOf('ex', 'ALTER COLUMN small TYPE bigint, ADD COLUMN w int', 'ex-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['4'] });
      const all: KeyRange = { after: null, upTo: ['4'] };
      expect(await compare(plan, [all])).toEqual([{ same: true, originalRows: 4, shadowRows: 4 }]);

      // Each change keeps the value equal (=) or nearly so, but changes its text.
      const changes: Array<[string, string]> = [
        [`f = '0'`, `id = 2`], // -0 -> 0
        [`r = '0'`, `id = 2`],
        [`n = 1.00`, `id = 2`], // 1.0 -> 1.00
        [`n = '-0.0000000000000000000010'`, `id = 3`],
        [`j = '{"a":1, "b": [1, 2]}'`, `id = 1`], // json keeps its spelling
        [`jb = '{"k": "😃"}'`, `id = 4`],
        [`t = 'grüße 😀 🇩🇪 '`, `id = 1`],
        [`t = 'grüsse 😀 🇩🇪'`, `id = 1`],
        [`t = NULL`, `id = 2`], // '' -> NULL
        [`b = '\\x00ff11'`, `id = 1`],
        [`b = NULL`, `id = 2`], // empty -> NULL
        [`a = '{1,NULL,4}'`, `id = 1`],
        [`a = '{1,2,3,4}'`, `id = 4`], // same elements, other dimensions
        [`ts = '2024-02-29 12:34:56.123457+00'`, `id = 1`],
        [`small = 5`, `id = 4`],
        [`f = 'NaN'`, `id = 3`],
      ];
      for (const [set, where] of changes) {
        await admin.query(`UPDATE ${names.shadow} SET ${set} WHERE ${where}`);
        const [r] = await compare(plan, [all]);
        expect({ set, ...r }).toEqual({ set, same: false, originalRows: 4, shadowRows: 4 });
        await session.checksummer.recopy(plan, all);
        expect((await compare(plan, [all]))[0]!.same).toBe(true);
      }
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it('finds a change in every column hashed by its type rather than its text, whatever the collation', async () => {
    // These types are hashed by their own hash functions where that is exact (postgres-checksum.ts):
    // a change that a type's hash would miss (case under a nondeterministic collation, the
    // 64-bit types' folding to 32 bits) must still count.
    const icu = await admin.query(`SELECT count(*)::int AS n FROM pg_collation WHERE collprovider = 'i'`);
    const ci = icu.rows[0].n > 0;
    if (ci) await admin.query("CREATE COLLATION IF NOT EXISTS ci_cksum (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
    await admin.query(`CREATE TABLE typed (id bigint PRIMARY KEY, b bool, s smallint, i int, o oid, d date, tm time, ts timestamp(6), tz timestamptz,
      u uuid, v varchar(20), t text ${ci ? 'COLLATE ci_cksum' : ''}, by bytea, big bigint)`);
    await admin.query(`INSERT INTO typed VALUES
      (1, true, 1, 1, 1, '2024-01-01', '00:00:00.000004', '2024-01-01 00:00:00.000001', '2024-01-01 00:00+00', '00000000-0000-0000-0000-000000000001', 'Abc', 'Grüße', '\\x00', -1),
      (2, false, -1, -1, 2, 'infinity', '23:59:59.999999', '-infinity', 'infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '', '', '\\x', 1),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
    const { plan, names } = await shadowOf('typed', 'ADD COLUMN w int', 'typed-job');
    try {
      // Open at both ends: a changed key stays in the range, so only the hash can tell.
      const all: KeyRange = { after: null, upTo: null };
      await session.copier.copyChunk(plan, all);
      expect(await compare(plan, [all])).toEqual([{ same: true, originalRows: 3, shadowRows: 3 }]);
      const changes: Array<[string, string]> = [
        [`b = NOT b`, `id = 1`],
        [`b = false`, `id = 3`], // NULL -> false
        [`s = 0`, `id = 3`], // NULL -> 0: a NULL hashes apart from every value
        [`i = 2`, `id = 1`],
        [`o = 3`, `id = 2`],
        [`d = '2024-01-02'`, `id = 1`],
        [`tm = '01:11:34.967301'`, `id = 1`], // hashes as 00:00:00.000004 under time's own (32-bit folding) hash
        [`big = 4294967295`, `id = 1`], // -1 -> 4294967295: alike under bigint's own hash
        [`big = 4294967296`, `id = 2`], // 1 -> 2^32: alike too
        [`id = 4294967298`, `id = 2`], // the key, likewise
        [`ts = '2024-01-01 00:00:00.000002'`, `id = 1`],
        [`tz = '2024-01-01 00:00:00.000001+00'`, `id = 1`],
        [`u = '00000000-0000-0000-0000-000000000002'`, `id = 1`],
        [`v = 'abc'`, `id = 1`], // case
        [`v = NULL`, `id = 2`], // '' -> NULL
        [`t = 'grüße'`, `id = 1`], // case, under a collation that calls them equal
        [`t = 'Grüsse'`, `id = 1`],
        [`by = NULL`, `id = 2`],
        [`i = NULL, s = -1`, `id = 2`], // -1 moved from one column to the other
      ];
      for (const [set, where] of changes) {
        await admin.query(`UPDATE ${names.shadow} SET ${set} WHERE ${where}`);
        const [r] = await compare(plan, [all]);
        expect({ set, ...r }).toEqual({ set, same: false, originalRows: 3, shadowRows: 3 });
        await session.checksummer.recopy(plan, all);
        expect((await compare(plan, [all]))[0]!.same).toBe(true);
      }
      // Values swapped between rows within one column: a sum of the column hashes alone would not see it.
      await admin.query(`UPDATE ${names.shadow} s SET d = CASE id WHEN 1 THEN 'infinity'::date ELSE '2024-01-01'::date END WHERE id IN (1, 2)`);
      expect((await compare(plan, [all]))[0]!.same).toBe(false);
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it('finds values moved between rows, a missing row and an extra one, in their own range only', async () => {
    await admin.query(`CREATE TABLE mv (a text, b int, v text, PRIMARY KEY (a, b))`);
    await admin.query(`INSERT INTO mv SELECT 'k😀' || (g % 3), g, 'v' || g FROM generate_series(1, 300) g`);
    const { plan, names } = await shadowOf('mv', 'ADD COLUMN w int', 'mv-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['k😀2', '300'] });
      const ranges: KeyRange[] = [
        { after: null, upTo: ['k😀0', '300'] },
        { after: ['k😀0', '300'], upTo: ['k😀1', '300'] },
        { after: ['k😀1', '300'], upTo: ['k😀2', '300'] },
      ];
      expect((await compare(plan, ranges)).map((r) => [r.same, r.originalRows, r.shadowRows])).toEqual([
        [true, 100, 100],
        [true, 100, 100],
        [true, 100, 100],
      ]);
      // Two rows swap their values: the same set of values, on the wrong keys.
      await admin.query(`UPDATE ${names.shadow} s SET v = CASE b WHEN 4 THEN 'v7' ELSE 'v4' END WHERE a = 'k😀1' AND b IN (4, 7)`);
      expect((await compare(plan, ranges)).map((r) => r.same)).toEqual([true, false, true]);
      await session.checksummer.recopy(plan, ranges[1]!);
      // One row missing and another one extra, in the same range: the count stays.
      await admin.query(`DELETE FROM ${names.shadow} WHERE a = 'k😀2' AND b = 5`);
      await admin.query(`INSERT INTO ${names.shadow} (a, b, v) VALUES ('k😀2', 3, 'v5')`);
      expect((await compare(plan, ranges)).map((r) => [r.same, r.originalRows, r.shadowRows])).toEqual([
        [true, 100, 100],
        [true, 100, 100],
        [false, 100, 100],
      ]);
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('checksum: one snapshot', () => {
  it('reads original and shadow as of the lock, whatever is written to either afterwards', async () => {
    await admin.query(`CREATE TABLE sn (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO sn SELECT g, g FROM generate_series(1, 2000) g`);
    const { plan, names } = await shadowOf('sn', 'ADD COLUMN w int', 'sn-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['2000'] });
      let drained = false;
      const view = await session.checksummer.open(plan, {
        lockTimeoutMs: 2000,
        drainUnderLock: async () => {
          // Writes to the original wait for the lock. This one also writes the shadow, in
          // the same transaction, so it commits into both tables the moment the lock is
          // released: the shadow's reader must not see it either.
          const write = admin.query(`WITH o AS (UPDATE sn SET v = -1 WHERE id = 10 RETURNING id) UPDATE ${names.shadow} SET v = -4 WHERE id = 1600 AND EXISTS (SELECT 1 FROM o)`);
          await new Promise((r) => setTimeout(r, 200));
          const waiting = await observer.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH o AS (UPDATE sn SET v = -1%'`);
          expect(waiting.rows[0].n).toBe(1);
          drained = true;
          void write.catch(() => undefined);
        },
      });
      try {
        expect(drained).toBe(true);
        // The write above commits now, after the snapshot: neither side sees it, nor
        // later writes to either table.
        await admin.query(`UPDATE sn SET v = -2 WHERE id = 11`);
        await admin.query(`UPDATE ${names.shadow} SET v = -3 WHERE id = 1500`);
        await admin.query(`DELETE FROM ${names.shadow} WHERE id = 1501`);
        await admin.query(`INSERT INTO ${names.shadow} (id, v) VALUES (0, 0)`);
        expect(await view.compare({ after: null, upTo: ['1000'] })).toEqual({ same: true, originalRows: 1000, shadowRows: 1000 });
        expect(await view.compare({ after: ['1000'], upTo: ['2000'] })).toEqual({ same: true, originalRows: 1000, shadowRows: 1000 });
        expect(await view.compare({ after: null, upTo: null })).toEqual({ same: true, originalRows: 2000, shadowRows: 2000 });
      } finally {
        await view.close();
      }
      expect((await admin.query(`SELECT v FROM sn WHERE id = 10`)).rows[0].v).toBe(-1);
      expect((await admin.query(`SELECT v FROM ${names.shadow} WHERE id = 1600`)).rows[0].v).toBe(-4);
      // On a new snapshot the differences show.
      expect((await compare(plan, [{ after: null, upTo: ['1000'] }, { after: ['1000'], upTo: ['2000'] }])).map((r) => r.same)).toEqual([false, false]);
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('checksum: the whole tables at once', () => {
  it('counts every row of both tables and finds a change anywhere in them', async () => {
    await admin.query(`CREATE TABLE wh (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO wh SELECT g, repeat('x', 200) || g FROM generate_series(1, 3000) g`);
    const { plan, names } = await shadowOf('wh', 'ADD COLUMN w int', 'wh-job');
    try {
      // The shadow's halves in the other physical order.
      await session.copier.copyChunk(plan, { after: ['1500'], upTo: null });
      await session.copier.copyChunk(plan, { after: null, upTo: ['1500'] });
      const whole = async () => {
        const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
        try {
          return await view.compare({ after: null, upTo: null });
        } finally {
          await view.close();
        }
      };
      expect(await whole()).toEqual({ same: true, originalRows: 3000, shadowRows: 3000 });
      const restore = (ids: string) => `UPDATE ${names.shadow} SET v = repeat('x', 200) || id WHERE id IN (${ids})`;
      const changes: Array<[string, string]> = [
        // a value changed at the start of the shadow, and at its end
        [`UPDATE ${names.shadow} SET v = v || '!' WHERE id = 1600`, restore('1600')],
        [`UPDATE ${names.shadow} SET v = v || '!' WHERE id = 1400`, restore('1400')],
        // two rows swap their values
        [`UPDATE ${names.shadow} SET v = repeat('x', 200) || CASE id WHEN 10 THEN 2900 ELSE 10 END WHERE id IN (10, 2900)`, restore('10, 2900')],
        // one row missing and another extra: the count stays
        [
          `DELETE FROM ${names.shadow} WHERE id = 5; INSERT INTO ${names.shadow} (id, v) VALUES (3001, 'x')`,
          `DELETE FROM ${names.shadow} WHERE id = 3001; INSERT INTO ${names.shadow} (id, v) VALUES (5, repeat('x', 200) || 5)`,
        ],
      ];
      for (const [change, undo] of changes) {
        await admin.query(change);
        expect((await whole()).same, change).toBe(false);
        await admin.query(undo);
        expect((await whole()).same, undo).toBe(true);
      }
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('checksum: every repair reported', () => {
  it('the verifier warns for each repaired chunk with its range and row counts, and keeps totals over its runs', async () => {
    await admin.query(`CREATE TABLE rp (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO rp SELECT g, g FROM generate_series(1, 3000) g WHERE g <> 2500`);
    const { plan, names } = await shadowOf('rp', 'ADD COLUMN w int', 'rp-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['3000'] });
      await admin.query(`DELETE FROM ${names.shadow} WHERE id IN (1500, 1501)`);
      await admin.query(`INSERT INTO ${names.shadow} (id, v) VALUES (2500, 1)`); // a row the original does not have
      const { log, lines } = capturingLogger();
      const tally = new ChecksumTally();
      const verify = () => verifyOn(plan, log, { tally });
      // The whole-table pass differs, so the 3 ranges are compared to find where.
      expect(await verify()).toEqual({ chunks: 4, repaired: 2 });
      const warned = lines.filter((l) => l.level === 40);
      expect(warned.map((l) => [l.range, l.originalRows, l.shadowRows])).toEqual([
        ['key range (1000) < key <= (2000)', 1000, 998],
        ['key range (2000) < key <= +inf', 999, 1000],
        [undefined, undefined, undefined],
      ]);
      expect(warned[1]!.msg).toMatch(/^checksum: repaired key range \(2000\) < key <= \+inf \(original 999 rows, shadow 1000 rows\) by copying it again\. A repair means the change stream or the copy missed a change/);
      expect(warned[2]!.msg).toBe('checksum: original and shadow match after 2 repair(s); see the warnings above and report them');
      expect(await verify()).toEqual({ chunks: 1, repaired: 0 });
      expect({ ...tally }).toEqual({ runs: 2, chunksCompared: 5, repairedChunks: 2 });
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it("the ranges are open at both ends: rows beyond the original's key bounds are compared and recopied, and an empty original is compared too", async () => {
    await admin.query(`CREATE TABLE ob (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO ob SELECT g, g FROM generate_series(1, 3000) g`);
    const { plan, names } = await shadowOf('ob', 'ADD COLUMN w int', 'ob-job');
    await admin.query(`CREATE TABLE oe (id int PRIMARY KEY, v int)`);
    const empty = await shadowOf('oe', 'ADD COLUMN w int', 'oe-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['3000'] });
      await admin.query(`INSERT INTO ${names.shadow} (id, v) VALUES (0, 0)`); // below the smallest key
      await admin.query(`DELETE FROM ${names.shadow} WHERE id = 2995`);
      // The ranges are cut outside the snapshot: here the original's largest keys are
      // deleted after the snapshot and before its bounds are read, so row 2995, which
      // the snapshot sees in the original only, lies above the bounds as read.
      const copier: RowCopier = {
        keyBounds: async (p) => {
          await admin.query(`DELETE FROM ob WHERE id > 2990`);
          return session.copier.keyBounds(p);
        },
        chunkEnd: (...a) => session.copier.chunkEnd(...a),
        copyChunk: (...a) => session.copier.copyChunk(...a),
      };
      const { log, lines } = capturingLogger();
      const verify = (copier: RowCopier, p: CopyPlan) => verifyOn(p, log, { copier });
      const repairs = () => lines.filter((l) => l.level === 40 && l.range).map((l) => [l.range, l.originalRows, l.shadowRows]);
      expect(await verify(copier, plan)).toEqual({ chunks: 4, repaired: 2 });
      expect(repairs()).toEqual([
        ['key range -inf < key <= (1000)', 1000, 1001],
        ['key range (2000) < key <= +inf', 1000, 999],
      ]);
      // Recopied from the original as it is now, without its rows above 2990.
      expect((await admin.query(`SELECT min(id) AS lo, max(id) AS hi, count(*)::int AS n FROM ${names.shadow}`)).rows[0]).toEqual({ lo: 1, hi: 2990, n: 2990 });

      await admin.query(`INSERT INTO ${empty.names.shadow} (id, v) VALUES (7, 7)`);
      lines.length = 0;
      expect(await verify(session.copier, empty.plan)).toEqual({ chunks: 2, repaired: 1 });
      expect(repairs()).toEqual([['key range -inf < key <= +inf', 0, 1]]);
      expect((await admin.query(`SELECT count(*)::int AS n FROM ${empty.names.shadow}`)).rows[0].n).toBe(0);
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
      await session.dropArtefacts(empty.names, { keepBackup: false });
    }
  });
});

describe('checksum: a repair never loses rows silently', () => {
  it('after repairs the whole tables are compared again: a recopy that removed a row outside its range is found and repaired', async () => {
    await admin.query(`CREATE TABLE rx (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO rx SELECT g, g FROM generate_series(1, 3000) g`);
    const { plan, names } = await shadowOf('rx', 'ADD COLUMN w int', 'rx-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['3000'] });
      await admin.query(`UPDATE ${names.shadow} SET v = -1 WHERE id = 10`);
      // The first recopy also loses a row of another range, as a recopy whose delete
      // reached past its range would; the range it repaired then compares equal.
      let damaged = false;
      const checksummer: Checksummer = {
        open: (...a) => session.checksummer.open(...a),
        recopyKeys: (...a) => session.checksummer.recopyKeys(...a),
        recopy: async (p, range) => {
          await session.checksummer.recopy(p, range);
          if (damaged) return;
          damaged = true;
          await admin.query(`DELETE FROM ${names.shadow} WHERE id = 2999`);
        },
      };
      const { log, lines } = capturingLogger();
      const result = await verifyOn(plan, log, { checksummer });
      expect(lines.filter((l) => l.level === 40 && l.range).map((l) => [l.range, l.originalRows, l.shadowRows, l.round])).toEqual([
        ['key range -inf < key <= (1000)', 1000, 1000, 1],
        ['key range (2000) < key <= +inf', 1000, 999, 2],
      ]);
      expect(result.repaired).toBe(2);
      expect((await admin.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE v <> id)::int AS bad FROM ${names.shadow}`)).rows[0]).toEqual({ n: 3000, bad: 0 });
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it('under a key collation change a needed repair fails the job before the cut-over: the two sides cannot be cut into the same ranges', async () => {
    await admin.query(`CREATE TABLE kc (k text COLLATE "en-x-icu" PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO kc VALUES ('a', 1), ('B', 2), ('c', 3), ('D', 4), ('e', 5)`);
    // The shadow orders its keys bytewise: 'B' < 'D' < 'a' < 'c' < 'e'; the original: a < B < c < D < e.
    const { plan, names } = await shadowOf('kc', 'ALTER COLUMN k TYPE text COLLATE "C"', 'kc-job');
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: null });
      const { log } = capturingLogger();
      const verify = () => verifyOn(plan, log, { chunkSize: 1 });
      // Equal tables match in the whole-table pass, whatever the order.
      expect(await verify()).toEqual({ chunks: 1, repaired: 0 });
      await admin.query(`UPDATE ${names.shadow} SET v = -1 WHERE k = 'c'`);
      await expect(verify()).rejects.toThrow(/^checksum: the shadow still differs from the original after 3 repairs in key range -inf < key <= \(a\);/);
      expect((await admin.query(`SELECT count(*)::int AS n FROM kc`)).rows[0].n).toBe(5);
    } finally {
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('checksummer keeping the shadow\'s other columns (a revert)', () => {
  it('recopy of a range changes rows in place, deletes rows gone from the original, and keeps the other columns', async () => {
    await admin.query("CREATE TABLE ckk (id int PRIMARY KEY, s text NOT NULL)");
    await admin.query("INSERT INTO ckk SELECT g, 's' || g FROM generate_series(1, 50) g");
    const { plan: built, names } = await shadowOf('ckk', 'ADD COLUMN x int NOT NULL DEFAULT 0', 'keepjob');
    const plan = { ...built, keepsOtherColumns: true };
    const shadow = `"${names.shadow}"`;
    await admin.query(`INSERT INTO ${shadow} (id, s, x) SELECT id, s, id * 10 FROM ckk`);
    await admin.query(`UPDATE ${shadow} SET s = 'stale' WHERE id IN (5, 45)`);
    await admin.query(`INSERT INTO ${shadow} (id, s, x) VALUES (51, 'gone', 510)`);
    await admin.query("INSERT INTO ckk VALUES (52, 'new')");
    await session.checksummer.recopy(plan, { after: [40], upTo: null });
    await session.checksummer.recopy(plan, { after: null, upTo: [40] });
    const rows = (await admin.query(`SELECT id, s, x FROM ${shadow} WHERE id IN (5, 45, 51, 52) OR x <> id * 10 ORDER BY id`)).rows;
    expect(rows).toEqual([
      { id: 5, s: 's5', x: 50 },
      { id: 45, s: 's45', x: 450 },
      { id: 52, s: 'new', x: 0 },
    ]);
  });

  it('recopies a range of more keys than a statement takes parameters (65535), in parts', async () => {
    await admin.query('CREATE TABLE ckbig (id int PRIMARY KEY, s text NOT NULL)');
    await admin.query("INSERT INTO ckbig SELECT g, 's' || g FROM generate_series(1, 70000) g");
    const { plan: built, names } = await shadowOf('ckbig', 'ADD COLUMN x int NOT NULL DEFAULT 0', 'keepbig');
    const plan = { ...built, keepsOtherColumns: true };
    await admin.query(`INSERT INTO "${names.shadow}" (id, s, x) SELECT id, 'stale', 1 FROM ckbig`);
    await session.checksummer.recopy(plan, { after: null, upTo: null });
    expect((await admin.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE s = 'stale' OR x <> 1)::int AS bad FROM "${names.shadow}"`)).rows[0]).toEqual({ n: 70000, bad: 0 });
  });
});
