import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { quoteIdent } from '../../src/dialects/postgres/postgres-quote.js';
import { analyzeAlter, splitTopLevel } from '../../src/dialects/postgres/postgres-alter-analysis.js';
import { postgresArtefactNames, parseArtefactName } from '../../src/dialects/postgres/postgres-names.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { ShadowshiftError } from '../../src/util/errors.js';
import { freshDb, openSession } from './helpers.js';

const ODD = ['we"ird', 'with space', 'Ünïcödé_表', 'select', 'x""y', 'a.b', "it's", '🙂 emoji'];

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgbasic'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('quoting', () => {
  it('round-trips odd identifiers through the server', async () => {
    for (const name of ODD) {
      const q = quoteIdent(name);
      await admin.query(`CREATE TABLE ${q} (${q} int PRIMARY KEY)`);
      const r = await admin.query(`SELECT relname FROM pg_class WHERE relname = $1`, [name]);
      expect(r.rows[0].relname).toBe(name);
      const a = await admin.query(`SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0`, [q]);
      expect(a.rows[0].attname).toBe(name);
      await admin.query(`DROP TABLE ${q}`);
    }
    expect(() => quoteIdent('a\u0000b')).toThrow();
  });
});

describe('artefact names', () => {
  it('are unique per job, within 63 bytes, recognisable', () => {
    const long = 'ü'.repeat(40);
    const a = postgresArtefactNames({ schema: 'public', name: long }, 'job-1');
    const b = postgresArtefactNames({ schema: 'public', name: long }, 'job-2');
    for (const n of [a.shadow, a.backup, a.changelog, a.extra.slot!]) {
      expect(Buffer.byteLength(n)).toBeLessThanOrEqual(63);
      expect(parseArtefactName(n)).not.toBeNull();
    }
    expect(a.shadow).not.toBe(b.shadow);
    expect(a.extra.slot).not.toBe(b.extra.slot);
    expect(a.extra.slot).toMatch(/^[a-z0-9_]+$/);
  });
});

describe('analyzeAlter', () => {
  it('reads renames, drops, adds and table renames', () => {
    const a = analyzeAlter(`RENAME COLUMN "Old Name" TO new_name`);
    expect([...a.renamedColumns]).toEqual([['Old Name', 'new_name']]);
    const b = analyzeAlter(`ADD COLUMN note text DEFAULT 'a, b', DROP COLUMN IF EXISTS "we,ird", ADD CONSTRAINT c CHECK (x IN (1, 2)), ADD "Quoted" numeric(12, 2), DROP legacy CASCADE, ALTER COLUMN y TYPE bigint`);
    expect([...b.addedColumns].sort()).toEqual(['Quoted', 'note']);
    expect([...b.droppedColumns].sort()).toEqual(['legacy', 'we,ird']);
    expect(b.renamesTable).toBe(false);
    expect(analyzeAlter('RENAME TO other').renamesTable).toBe(true);
    expect(analyzeAlter('SET SCHEMA other').renamesTable).toBe(true);
    expect(analyzeAlter('ALTER TABLE "s"."t" RENAME a TO b').renamedColumns.get('a')).toBe('b');
    expect(analyzeAlter(`ADD COLUMN IF NOT EXISTS Mixed int`).addedColumns.has('mixed')).toBe(true);
    expect(splitTopLevel(`ADD c text DEFAULT $$x, y$$, ADD d text DEFAULT E'it\\'s, ok' -- a, comment\n, ADD e int`)).toHaveLength(3);
  });
});

describe('inspector', () => {
  it('describes columns, indexes, FKs, triggers and honours search_path', async () => {
    await admin.query(`CREATE SCHEMA other`);
    await admin.query(`CREATE TABLE parent (id bigint PRIMARY KEY)`);
    await admin.query(`CREATE TABLE insp (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      p bigint REFERENCES parent(id),
      amount numeric(12,2) NOT NULL,
      name varchar(20),
      doubled numeric GENERATED ALWAYS AS (amount * 2) STORED,
      UNIQUE (name))`);
    await admin.query(`CREATE INDEX insp_lower ON insp (lower(name))`);
    await admin.query(`CREATE TABLE child (id int PRIMARY KEY, insp_id bigint REFERENCES insp(id))`);
    await admin.query(`CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`);
    await admin.query(`CREATE TRIGGER insp_trg BEFORE INSERT ON insp FOR EACH ROW EXECUTE FUNCTION noop()`);
    await admin.query(`CREATE TABLE other."Odd Table" (id int PRIMARY KEY)`);
    const info = (await session.inspectTable({ schema: 'public', name: 'insp' }))!;
    expect(info.columns.map((c) => [c.name, c.type, c.nullable, c.generated])).toEqual([
      ['id', 'bigint', false, false],
      ['p', 'bigint', true, false],
      ['amount', 'numeric(12,2)', false, false],
      ['name', 'character varying(20)', true, false],
      ['doubled', 'numeric', true, true],
    ]);
    expect(info.indexes.find((i) => i.primary)).toMatchObject({ name: 'insp_pkey', columns: ['id'], unique: true });
    expect(info.indexes.find((i) => i.name === 'insp_name_key')).toMatchObject({ columns: ['name'], unique: true, primary: false });
    expect(info.indexes.find((i) => i.name === 'insp_lower')!.columns).toEqual(['lower(name::text)']);
    expect(info.foreignKeys).toEqual(['insp_p_fkey']);
    expect(info.referencedBy).toEqual(['child.child_insp_id_fkey']);
    expect(info.triggers).toEqual(['insp_trg']);
    expect(await session.inspectTable({ schema: 'public', name: 'nope' })).toBeNull();

    const s2 = await openSession(url);
    try {
      expect(s2.resolveTable('insp')).toEqual({ schema: 'public', name: 'insp' });
      expect(s2.resolveTable('INSP')).toEqual({ schema: 'public', name: 'insp' });
      expect(s2.resolveTable('other."Odd Table"')).toEqual({ schema: 'other', name: 'Odd Table' });
      expect(s2.resolveTable('"other"."Odd Table"')).toEqual({ schema: 'other', name: 'Odd Table' });
    } finally {
      await s2.close();
    }
    // search_path from the role: an unqualified name resolves to the schema that has it.
    await admin.query(`ALTER ROLE postgres IN DATABASE ${quoteIdent((await admin.query('SELECT current_database() AS d')).rows[0].d)} SET search_path = other, public`);
    const s3 = await openSession(url);
    try {
      expect(s3.resolveTable('"Odd Table"')).toEqual({ schema: 'other', name: 'Odd Table' });
      expect(s3.resolveTable('insp')).toEqual({ schema: 'public', name: 'insp' });
      expect(s3.resolveTable('missing')).toEqual({ schema: 'other', name: 'missing' });
    } finally {
      await s3.close();
      await admin.query(`ALTER ROLE postgres IN DATABASE ${quoteIdent((await admin.query('SELECT current_database() AS d')).rows[0].d)} RESET search_path`);
    }
  });
});

describe('shadow', () => {
  async function relations(): Promise<string[]> {
    const r = await admin.query(`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1`);
    return r.rows.map((x) => x.relname);
  }

  it('previewShadow describes the result and leaves nothing behind', async () => {
    await admin.query(`CREATE TABLE pv (id serial PRIMARY KEY, a int, b text)`);
    await admin.query(`CREATE TABLE pvref (id int PRIMARY KEY)`);
    const before = await relations();
    const info = (await session.inspectTable({ schema: 'public', name: 'pv' }))!;
    const prev = await session.previewShadow(info, 'ADD COLUMN c numeric(5,1) NOT NULL DEFAULT 0, DROP COLUMN b, RENAME COLUMN a TO a2');
    expect(prev.columns.map((c) => c.name)).toEqual(['id', 'a2', 'c']);
    const prev2 = await session.previewShadow(info, 'RENAME COLUMN a TO a2');
    expect(prev2.columns.map((c) => c.name)).toEqual(['id', 'a2', 'b']);
    // A foreign key cannot be tried on a temporary table: the preview falls back to a rolled-back table.
    const prev3 = await session.previewShadow(info, 'ADD COLUMN r int REFERENCES pvref(id)');
    expect(prev3.columns.map((c) => c.name)).toEqual(['id', 'a', 'b', 'r']);
    expect(await relations()).toEqual(before);
    // A USING expression the copy could not reproduce is refused; a plain cast is fine.
    await expect(session.previewShadow(info, 'ALTER COLUMN a TYPE bigint USING a * 100')).rejects.toThrow(/USING a \* 100.*expand\/contract/);
    expect((await session.previewShadow(info, 'ALTER COLUMN b TYPE int USING b::int')).columns.find((c) => c.name === 'b')!.type).toBe('integer');
    await expect(session.previewShadow(info, 'ADD COLUMN oops nosuchtype')).rejects.toThrow(/type "nosuchtype" does not exist/);
    await expect(session.previewShadow(info, 'ADD COLUMN')).rejects.toBeInstanceOf(ShadowshiftError);
    expect(await relations()).toEqual(before);
  });

  it('createShadow copies the definition and applies the ALTER; a bad ALTER leaves nothing', async () => {
    await admin.query(`CREATE TABLE cs (id int PRIMARY KEY, v text CHECK (v <> ''), n int DEFAULT 7) WITH (fillfactor = 70)`);
    await admin.query(`COMMENT ON TABLE cs IS 'the cs table'`);
    await admin.query(`COMMENT ON COLUMN cs.v IS 'a value'`);
    const info = (await session.inspectTable({ schema: 'public', name: 'cs' }))!;
    const names = session.artefactNames(info.ref, 'job-cs');
    const before = await relations();
    await expect(session.createShadow(info, 'ADD COLUMN x nosuchtype', names)).rejects.toThrow(/nosuchtype/);
    expect(await relations()).toEqual(before);
    const shadow = await session.createShadow(info, 'ADD COLUMN x int NOT NULL DEFAULT 1', names);
    expect(shadow.ref.name).toBe(names.shadow);
    expect(shadow.columns.map((c) => c.name)).toEqual(['id', 'v', 'n', 'x']);
    const r = await admin.query(
      `SELECT obj_description(c.oid, 'pg_class') AS d, c.reloptions::text AS o, col_description(c.oid, 2) AS cd,
              (SELECT count(*) FROM pg_constraint WHERE conrelid = c.oid AND contype = 'c')::int AS checks
         FROM pg_class c WHERE c.relname = $1`,
      [names.shadow],
    );
    expect(r.rows[0]).toEqual({ d: 'the cs table', o: '{fillfactor=70}', cd: 'a value', checks: 1 });
    await session.dropArtefacts(names, { keepBackup: false });
    expect(await relations()).toEqual(before);
  });
});

describe('job lock', () => {
  it('refuses a second job on the same table, naming it', async () => {
    const other = await openSession(url);
    try {
      await session.acquireJobLock({ schema: 'public', name: 'cs' });
      await expect(other.acquireJobLock({ schema: 'public', name: 'cs' })).rejects.toThrow(/already running on public\.cs/);
      await other.acquireJobLock({ schema: 'public', name: 'pv' });
      await session.releaseJobLock({ schema: 'public', name: 'cs' });
      await other.acquireJobLock({ schema: 'public', name: 'cs' });
    } finally {
      await other.close();
    }
  });
});

describe('connection settings', () => {
  it('maps TLS modes and passes every value through as text', async () => {
    const { clientConfigFor, TEXT_TYPES } = await import('../../src/dialects/postgres/postgres-context.js');
    const { parseConnectionUrl } = await import('../../src/util/connection-url.js');
    const base = parseConnectionUrl('postgres://u:p@db.example:5433/app');
    expect(clientConfigFor({ ...base, tls: { mode: 'disable' } }).ssl).toBe(false);
    expect(clientConfigFor({ ...base, tls: { mode: 'require' } }).ssl).toMatchObject({ rejectUnauthorized: false });
    expect(clientConfigFor({ ...base, tls: { mode: 'require', ca: 'CA' } }).ssl).toMatchObject({ rejectUnauthorized: true, ca: 'CA' });
    expect(clientConfigFor({ ...base, tls: { mode: 'verify-full', ca: 'CA', cert: 'C', key: 'K' } }).ssl).toMatchObject({ rejectUnauthorized: true, ca: 'CA', cert: 'C', key: 'K' });
    const vca = clientConfigFor({ ...base, tls: { mode: 'verify-ca', ca: 'CA' } }).ssl as { checkServerIdentity: () => unknown };
    expect(vca.checkServerIdentity()).toBeUndefined();
    const cfg = clientConfigFor({ ...base, socketPath: '/var/run/postgresql' });
    expect(cfg).toMatchObject({ host: '/var/run/postgresql', port: 5433, user: 'u', password: 'p', database: 'app' });
    // Through a real connection: nothing parsed, nothing rounded or moved in time.
    const r = await session.ctx.pool.query(
      `SELECT 9223372036854775807::int8 AS i8, 0.1::float8 AS f, '{"n": 9007199254740993}'::jsonb AS j, '2001-02-03 04:05:06.789012+00'::timestamptz AS ts, '\\x00ff'::bytea AS b, true AS bo, '{1,2}'::int[] AS a`,
    );
    expect(r.rows[0]).toEqual({ i8: '9223372036854775807', f: '0.1', j: '{"n": 9007199254740993}', ts: '2001-02-02 23:05:06.789012-05', b: '\\x00ff', bo: 't', a: '{1,2}' });
    expect(typeof TEXT_TYPES.getTypeParser).toBe('function');
  });
});
