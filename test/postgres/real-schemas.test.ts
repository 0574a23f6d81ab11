// Issue 18, "Also cover" (PostgreSQL): real schemas' corner cases, each a whole job
// under a small write workload, the new table compared with the original (kept as the
// backup) and zero repaired chunks; or a refusal naming the problem and the fix.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { runAlter } from '../support/alter.js';
import { alterUnderWrites } from '../support/under-writes.js';
import { PreflightError } from '../../src/util/errors.js';

let url: string;
let c: pg.Client;
let w: pg.Client;

beforeAll(async () => {
  url = (await createPgDatabase('pgcover')).url;
  c = await pgConnect(url);
  w = await pgConnect(url);
});
afterAll(async () => {
  await w?.end();
  await c?.end();
});

async function q(sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  return (await c.query(sql, params)).rows;
}

/** Row count and a digest of every row's text over `columns`, in key order: equal images, equal data. */
async function image(table: string, columns: string[], key = 'id'): Promise<{ n: string; h: string; first: string }> {
  const list = columns.join(', ');
  const [r] = await q(`SELECT count(*)::text AS n, md5(string_agg(ROW(${list})::text, '|' ORDER BY ${key})) AS h, min(ROW(${list})::text) AS first FROM ${table}`);
  return r as { n: string; h: string; first: string };
}

async function expectSameData(table: string, backup: string | null, columns: string[], key = 'id', schema = 'public'): Promise<void> {
  expect(backup).toBeTruthy();
  const b = `"${schema.replace(/"/g, '""')}"."${backup!.replace(/"/g, '""')}"`;
  const before = await image(b, columns, key);
  expect(Number(before.n)).toBeGreaterThan(0);
  expect(await image(table, columns, key)).toEqual(before);
}

async function refused(table: string, alter: string): Promise<PreflightError> {
  const err = await runAlter(url, table, alter).then(() => null, (e: unknown) => e);
  expect(err, alter).toBeInstanceOf(PreflightError);
  expect((err as PreflightError).exitCode).toBe(3);
  return err as PreflightError;
}

describe('real schemas (PostgreSQL)', () => {
  it('refuses an --alter carrying a second statement after ";", and runs nothing of it', async () => {
    await c.query('CREATE TABLE semi (id int PRIMARY KEY, n int)');
    await c.query('CREATE TABLE semi_victim (id int PRIMARY KEY)');
    await c.query('INSERT INTO semi VALUES (1, 1)');
    for (const alter of ['ADD COLUMN c int; DROP TABLE semi_victim', 'ADD COLUMN c int;DROP TABLE semi_victim;', "ADD COLUMN c text DEFAULT $$;$$; DROP TABLE semi_victim"]) {
      const err = await refused('semi', alter);
      expect(err.message).toMatch(/more than one statement.*DROP TABLE semi_victim/);
    }
    expect(await q("SELECT relname FROM pg_class WHERE relname LIKE 'semi%' AND relkind = 'r' ORDER BY 1")).toEqual([{ relname: 'semi' }, { relname: 'semi_victim' }]);
    // A ';' inside a literal is not a second statement.
    const r = await runAlter(url, 'semi', "ADD COLUMN c text NOT NULL DEFAULT ';'");
    expect(r.repairedChunks).toBe(0);
    expect(await q('SELECT id, n, c FROM semi')).toEqual([{ id: 1, n: 1, c: ';' }]);
  });

  it('enums, domains, arrays and citext', async () => {
    const citext = (await q("SELECT 1 FROM pg_available_extensions WHERE name = 'citext'")).length > 0;
    if (citext) await c.query('CREATE EXTENSION IF NOT EXISTS citext');
    await c.query("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')");
    await c.query('CREATE DOMAIN posint AS int CHECK (VALUE > 0)');
    await c.query("CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%')");
    const ci = citext ? 'citext' : 'text';
    await c.query(`CREATE TABLE kinds (id int PRIMARY KEY, m mood NOT NULL, p posint, e email, ia int[], ta text[], m2 int[][], ma mood[], name ${ci} NOT NULL UNIQUE)`);
    await c.query(`INSERT INTO kinds SELECT g, (ARRAY['sad','ok','happy']::mood[])[g % 3 + 1], g, 'u' || g || '@x', ARRAY[g, NULL, -g], ARRAY['a,b', NULL, '"q"', 'ü😀' || g], ARRAY[[g, 1], [2, 3]], ARRAY['ok', 'sad']::mood[], CASE WHEN g % 2 = 0 THEN 'Name' || g ELSE 'nAME' || g END FROM generate_series(1, 3000) g`);
    const run = await alterUnderWrites(url, 'kinds', "ADD COLUMN note text, ALTER COLUMN p TYPE bigint", async (i) => {
      const id = (i * 37) % 3000 + 1;
      if (i % 3 === 0) await w.query(`INSERT INTO kinds VALUES ($1::int, 'happy', $1::int, 'n@' || $1::int, ARRAY[$1::int], ARRAY['x', NULL], ARRAY[[1,2],[3,4]], '{}', 'NEW' || $1::int)`, [10000 + i]);
      else if (i % 3 === 1) await w.query("UPDATE kinds SET m = 'sad', ia = ia || $2::int, ta = ARRAY['}{', ''], ma = ARRAY['happy']::mood[], name = upper(name::text) WHERE id = $1", [id, i]);
      else await w.query('DELETE FROM kinds WHERE id = $1', [id]);
    }, { chunkSize: 250 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('kinds', run.result.backupTable, ['id', 'm', 'p', 'e', 'ia', 'ta', 'm2', 'ma', 'name']);
    const types = await q("SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'kinds'::regclass AND attname IN ('m', 'e', 'ma', 'name') ORDER BY attname");
    expect(types).toEqual([
      { attname: 'e', t: 'email' },
      { attname: 'm', t: 'mood' },
      { attname: 'ma', t: 'mood[]' },
      { attname: 'name', t: ci },
    ]);
  });

  it('generated columns (stored), kept and added', async () => {
    await c.query('CREATE TABLE gen (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, s int GENERATED ALWAYS AS (a * b) STORED)');
    await c.query('INSERT INTO gen (id, a, b) SELECT g, g, g % 7 FROM generate_series(1, 3000) g');
    const run = await alterUnderWrites(url, 'gen', 'ADD COLUMN d int GENERATED ALWAYS AS (a - b) STORED', async (i) => {
      const id = (i * 29) % 3000 + 1;
      if (i % 3 === 0) await w.query('INSERT INTO gen (id, a, b) VALUES ($1, $2, $3)', [10000 + i, i, i % 11]);
      else if (i % 3 === 1) await w.query('UPDATE gen SET a = a + 1, b = b + 2 WHERE id = $1', [id]);
      else await w.query('DELETE FROM gen WHERE id = $1', [id]);
    }, { chunkSize: 250 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('gen', run.result.backupTable, ['id', 'a', 'b', 's']);
    expect(await q('SELECT count(*)::int AS n FROM gen WHERE s IS DISTINCT FROM a * b OR d IS DISTINCT FROM a - b')).toEqual([{ n: 0 }]);
  });

  it('a table with 120 columns', async () => {
    const cols = Array.from({ length: 119 }, (_, i) => `c${i} ${i % 3 === 0 ? 'text' : 'int'}`);
    await c.query(`CREATE TABLE wide (id int PRIMARY KEY, ${cols.join(', ')})`);
    const vals = (g: string) => Array.from({ length: 119 }, (_, i) => (i % 3 === 0 ? `'v' || (${g} + ${i})` : `(${g} * ${i}) % 9973`)).join(', ');
    await c.query(`INSERT INTO wide SELECT g, ${vals('g')} FROM generate_series(1, 1500) g`);
    const run = await alterUnderWrites(url, 'wide', 'ADD COLUMN c119 int, ALTER COLUMN c1 TYPE bigint', async (i) => {
      const id = (i * 17) % 1500 + 1;
      if (i % 3 === 0) await w.query(`INSERT INTO wide SELECT g, ${vals('g')} FROM (SELECT ${10000 + i} AS g) s`);
      else if (i % 3 === 1) await w.query(`UPDATE wide SET c${i % 118} = NULL, c118 = ${i} WHERE id = ${id}`);
      else await w.query(`DELETE FROM wide WHERE id = ${id}`);
    }, { chunkSize: 200 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('wide', run.result.backupTable, ['id', ...Array.from({ length: 119 }, (_, i) => `c${i}`)]);
  });

  it('TOAST values over 1 MB, including updates that leave them unchanged', async () => {
    await c.query('CREATE TABLE toast (id int PRIMARY KEY, t text, b bytea, n int)');
    // md5 chains do not compress much, so the values stay out of line (TOAST) at > 1 MB.
    const big = (seed: string, kb: number) => `(SELECT string_agg(md5(${seed} || ':' || x), '') FROM generate_series(1, ${kb * 32}) x)`;
    await c.query(`INSERT INTO toast SELECT g, ${big("'t' || g", 1200)}, convert_to(${big("'b' || g", 1100)}, 'UTF8'), g FROM generate_series(1, 6) g`);
    const run = await alterUnderWrites(url, 'toast', 'ADD COLUMN tag int', async (i) => {
      const id = (i % 6) + 1;
      // Most updates leave t and b alone: the stream sends them as "unchanged TOAST".
      if (i % 4 === 0) await w.query(`UPDATE toast SET t = ${big(`'u${i}'`, 1100)} WHERE id = $1`, [id]);
      else if (i % 4 === 3) await w.query(`INSERT INTO toast VALUES ($1, ${big(`'i${i}'`, 1050)}, NULL, $1)`, [100 + i]);
      else await w.query('UPDATE toast SET n = n + 1 WHERE id = $1', [id]);
    }, { chunkSize: 2, writesWhilePostponed: 8 });
    expect(run.result.repairedChunks).toBe(0);
    const digest = async (t: string) => q(`SELECT id, length(t) AS lt, md5(t) AS ht, length(b) AS lb, md5(b) AS hb, n FROM ${t} ORDER BY id`);
    const after = await digest('toast');
    expect(after).toEqual(await digest(run.result.backupTable!));
    expect(after.filter((r) => Number(r.lt) > 1024 * 1024).length).toBeGreaterThan(3);
  });

  it('REPLICA IDENTITY FULL and USING INDEX (over the key) work; an identity without the key, or NOTHING, is refused naming the fix', async () => {
    for (const [table, identity] of [
      ['ri_full', 'FULL'],
      ['ri_index', 'USING INDEX ri_index_code'],
    ] as const) {
      await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY, code text NOT NULL, n int)`);
      await c.query(`CREATE UNIQUE INDEX ${table}_code ON ${table} (id, code)`);
      await c.query(`ALTER TABLE ${table} REPLICA IDENTITY ${identity}`);
      await c.query(`INSERT INTO ${table} SELECT g, 'c' || g, g FROM generate_series(1, 2000) g`);
      const run = await alterUnderWrites(url, table, 'ADD COLUMN extra int', async (i) => {
        const id = (i * 13) % 2000 + 1;
        if (i % 3 === 0) await w.query(`INSERT INTO ${table} VALUES ($1::int, 'new' || $1::int, $1::int)`, [10000 + i]);
        else if (i % 3 === 1) await w.query(`UPDATE ${table} SET n = n + 1, code = code || 'x' WHERE id = $1`, [id]);
        else await w.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
      }, { chunkSize: 250 });
      expect(run.result.repairedChunks).toBe(0);
      await expectSameData(table, run.result.backupTable, ['id', 'code', 'n']);
      const [ri] = await q(`SELECT relreplident::text AS r FROM pg_class WHERE oid = '${table}'::regclass`);
      expect(ri, `${table} keeps its replica identity`).toEqual({ r: identity === 'FULL' ? 'f' : 'i' });
    }
    await c.query('CREATE TABLE ri_nothing (id int PRIMARY KEY, n int)');
    await c.query('ALTER TABLE ri_nothing REPLICA IDENTITY NOTHING');
    expect((await refused('ri_nothing', 'ADD COLUMN extra int')).message).toMatch(/replica identity \(none\).*lacks key column\(s\) id.*REPLICA IDENTITY DEFAULT/i);
    // An identity index that leaves out the copy key (the primary key) cannot match deletes.
    await c.query('CREATE TABLE ri_other (id int PRIMARY KEY, code text NOT NULL)');
    await c.query('CREATE UNIQUE INDEX ri_other_code ON ri_other (code)');
    await c.query('ALTER TABLE ri_other REPLICA IDENTITY USING INDEX ri_other_code');
    expect((await refused('ri_other', 'ADD COLUMN extra int')).message).toMatch(/replica identity \(code\).*lacks key column\(s\) id.*REPLICA IDENTITY DEFAULT/i);
  });

  it('a table in a non-public schema with mixed-case names', async () => {
    await c.query('CREATE SCHEMA "Sales"');
    await c.query('CREATE TABLE "Sales"."Orders" ("Id" int PRIMARY KEY, "Amount" numeric(12,2) NOT NULL, "Note" text, "Qty" int)');
    await c.query('CREATE INDEX "Orders_Amount_Idx" ON "Sales"."Orders" ("Amount")');
    await c.query(`INSERT INTO "Sales"."Orders" SELECT g, g * 1.25, 'N' || g, g FROM generate_series(1, 3000) g`);
    const run = await alterUnderWrites(url, '"Sales"."Orders"', 'ADD COLUMN "Extra" int, ALTER COLUMN "Note" TYPE varchar(40)', async (i) => {
      const id = (i * 31) % 3000 + 1;
      if (i % 3 === 0) await w.query('INSERT INTO "Sales"."Orders" VALUES ($1, $2, $3, $1)', [10000 + i, i / 4, `i${i}`]);
      else if (i % 3 === 1) await w.query('UPDATE "Sales"."Orders" SET "Amount" = "Amount" + 1, "Qty" = "Qty" - 1 WHERE "Id" = $1', [id]);
      else await w.query('DELETE FROM "Sales"."Orders" WHERE "Id" = $1', [id]);
    }, { chunkSize: 250 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('"Sales"."Orders"', run.result.backupTable, ['"Id"', '"Amount"', '"Note"', '"Qty"'], '"Id"', 'Sales');
    expect(await q(`SELECT indexname FROM pg_indexes WHERE schemaname = 'Sales' AND tablename = 'Orders' ORDER BY 1`)).toEqual([{ indexname: 'Orders_Amount_Idx' }, { indexname: 'Orders_pkey' }]);
  });

  // The copy plan once folded names' case (MySQL's rule): "Note" and note mapped to one
  // target and the copy failed with column "note" specified more than once.
  it('columns whose names differ only in case ("Note" and note)', async () => {
    await c.query('CREATE TABLE cased ("Id" int PRIMARY KEY, "Note" text, note int)');
    await c.query(`INSERT INTO cased SELECT g, 'N' || g, g FROM generate_series(1, 500) g`);
    const run = await alterUnderWrites(url, 'cased', 'ADD COLUMN extra int', async (i) => {
      await w.query('UPDATE cased SET note = note - 1, "Note" = "Note" || $2 WHERE "Id" = $1', [(i * 7) % 500 + 1, String(i % 10)]);
    }, { chunkSize: 100 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('cased', run.result.backupTable, ['"Id"', '"Note"', 'note'], '"Id"');
  });

  it('exclusion constraints are kept and enforced on the new table', async () => {
    await c.query('CREATE TABLE booking (id int PRIMARY KEY, room int NOT NULL, during int4range NOT NULL, EXCLUDE USING gist (during WITH &&))');
    await c.query('INSERT INTO booking SELECT g, g % 5, int4range(g * 10, g * 10 + 5) FROM generate_series(1, 2000) g');
    const run = await alterUnderWrites(url, 'booking', 'ADD COLUMN note text', async (i) => {
      const id = (i * 7) % 2000 + 1;
      if (i % 3 === 0) await w.query('INSERT INTO booking VALUES ($1, 1, int4range($1 * 10, $1 * 10 + 5))', [10000 + i]);
      else if (i % 3 === 1) await w.query('UPDATE booking SET during = int4range(lower(during), lower(during) + 7), room = room + 1 WHERE id = $1', [id]);
      else await w.query('DELETE FROM booking WHERE id = $1', [id]);
    }, { chunkSize: 250 });
    expect(run.result.repairedChunks).toBe(0);
    await expectSameData('booking', run.result.backupTable, ['id', 'room', 'during']);
    expect(await q("SELECT contype::text AS t FROM pg_constraint WHERE conrelid = 'booking'::regclass AND contype <> 'n' ORDER BY 1")).toEqual([{ t: 'p' }, { t: 'x' }]);
    // Against a row still there (the writes above delete some, row 1 among them on a long run).
    await expect(c.query('INSERT INTO booking SELECT -1, 1, during FROM booking ORDER BY id LIMIT 1')).rejects.toThrow(/exclusion|conflicting/i);
  });
});
