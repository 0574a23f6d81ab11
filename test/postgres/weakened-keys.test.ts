// A key the ALTER makes compare less finely on PostgreSQL: a nondeterministic (case-
// insensitive) collation. ON CONFLICT (key) already raises on any other unique index,
// but if the copy key itself were weakened, ON CONFLICT (key) DO NOTHING would take
// 'A' for the 'a' it already copied and drop it without a word.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { runAlter } from '../support/alter.js';
import { DataLossError, PreflightError } from '../../src/util/errors.js';

const TO_CASE_INSENSITIVE = 'ALTER COLUMN code TYPE text COLLATE ci';

let url: string;
let c: pg.Client;
/** Why the tests cannot run here, or null. */
let noIcu: string | null = null;

beforeAll(async () => {
  url = (await createPgDatabase('pgweak')).url;
  c = await pgConnect(url);
  const icu = await c.query("SELECT count(*)::int AS n FROM pg_collation WHERE collprovider = 'i'");
  if (icu.rows[0].n === 0) noIcu = 'this PostgreSQL is built without ICU, so it has no nondeterministic collations';
  else await c.query("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
});
afterAll(async () => {
  await c?.end();
});

async function q(sql: string): Promise<Record<string, unknown>[]> {
  return (await c.query(sql)).rows;
}

async function fingerprint(table: string) {
  const def = await q(`SELECT attname, format_type(atttypid, atttypmod) AS t, attcollation FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  const contents = await q(`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS h, count(*) AS n FROM ${table} t`);
  const objects = await q("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname");
  const slots = await q('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()');
  return { def, contents, objects, slots };
}

async function outcome(table: string, alter: string): Promise<unknown> {
  return runAlter(url, table, alter, { checksum: false }).then(
    () => null,
    (e: unknown) => e,
  );
}

describe('a primary key the ALTER makes case-insensitive (PostgreSQL)', () => {
  it('is refused when no other key can match rows', async (ctx) => {
    // Reason: the case needs an ICU collation, which a server built without ICU lacks (noIcu says so).
    if (noIcu) ctx.skip(noIcu);
    await c.query('CREATE TABLE p_only (code text PRIMARY KEY, v int)');
    await c.query("INSERT INTO p_only VALUES ('a', 1), ('A', 2), ('b', 3)");
    const before = await fingerprint('p_only');
    const err = await outcome('p_only', TO_CASE_INSENSITIVE);
    expect(await q('SELECT count(*)::int AS n FROM p_only')).toEqual([{ n: 3 }]);
    expect(err).toBeInstanceOf(PreflightError);
    expect((err as Error).message).toContain('the ALTER changes how code compares (text → text, collation ci), so p_only_pkey is a new unique key and cannot be the copy key');
    expect(await fingerprint('p_only')).toEqual(before);
  });

  it('copies by another key, fails on rows that collide under the new collation, and succeeds once they differ', async (ctx) => {
    // Reason: the case needs an ICU collation, which a server built without ICU lacks (noIcu says so).
    if (noIcu) ctx.skip(noIcu);
    await c.query('CREATE TABLE p_two (code text PRIMARY KEY, id int NOT NULL, v int, CONSTRAINT p_two_id_key UNIQUE (id))');
    // The stream must identify old rows by the key the copy will use.
    await c.query('ALTER TABLE p_two REPLICA IDENTITY USING INDEX p_two_id_key');
    await c.query("INSERT INTO p_two SELECT 'c' || g, g, g FROM generate_series(1, 500) g");
    await c.query("UPDATE p_two SET code = 'a' WHERE id = 100");
    await c.query("UPDATE p_two SET code = 'A' WHERE id = 400");
    const before = await fingerprint('p_two');
    const err = await outcome('p_two', TO_CASE_INSENSITIVE);
    expect(await q('SELECT count(*)::int AS n FROM p_two')).toEqual([{ n: 500 }]);
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(/Key \(code\)=\((a|A)\) already exists/);
    expect((err as Error).message).toContain('p_two has it as p_two_pkey, but the ALTER changes how code compares (text → text, collation ci)');
    expect(await fingerprint('p_two')).toEqual(before);

    await c.query("UPDATE p_two SET code = 'b' WHERE id = 400");
    expect(await outcome('p_two', TO_CASE_INSENSITIVE)).toBeNull();
    expect(await q("SELECT count(*)::int AS n, count(*) FILTER (WHERE code = 'C7' AND id = 7)::int AS ci FROM p_two")).toEqual([{ n: 500, ci: 1 }]);
  });
});
