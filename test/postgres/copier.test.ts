import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { DataLossError } from '../../src/util/errors.js';
import { PostgresCopier } from '../../src/dialects/postgres/postgres-copier.js';
import type { CopyPlan } from '../../src/dialects/dialect.js';
import { freshDb, makePlan, syncTo, tableText } from './helpers.js';
import { pgConnect } from '../support/databases.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgcopy'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

async function shadowFor(table: string, alter: string, job: string) {
  const original = (await session.inspectTable({ schema: 'public', name: table }))!;
  const names = session.artefactNames(original.ref, job);
  const shadow = await session.createShadow(original, alter, names);
  return { names, plan: makePlan(original, shadow, session.analyzeAlter(alter)) };
}

describe('copier', () => {
  it('walks composite keys in chunks', async () => {
    await admin.query(`CREATE TABLE comp (a int, b text, v numeric, PRIMARY KEY (a, b))`);
    await admin.query(`INSERT INTO comp SELECT g / 10, 'k' || (g % 10), g * 1.5 FROM generate_series(0, 999) g`);
    const { names, plan } = await shadowFor('comp', 'ADD COLUMN w int', 'comp-job');
    const bounds = (await session.copier.keyBounds(plan))!;
    expect(bounds).toEqual({ min: ['0', 'k0'], max: ['99', 'k9'] });
    let after: unknown[] | null = null;
    let total = 0;
    let chunks = 0;
    for (;;) {
      const upTo = await session.copier.chunkEnd(plan, after as never, 77, bounds.max);
      total += (await session.copier.copyChunk(plan, { after: after as never, upTo })).rowsCopied;
      chunks++;
      after = upTo;
      if (upTo[0] === bounds.max[0] && upTo[1] === bounds.max[1]) break;
    }
    expect(total).toBe(1000);
    expect(chunks).toBe(13);
    expect(await tableText(admin, `(SELECT a, b, v FROM ${names.shadow})`, '1')).toEqual(await tableText(admin, `(SELECT a, b, v FROM comp)`, '1'));
    // Copying again overwrites nothing.
    expect((await session.copier.copyChunk(plan, { after: null, upTo: bounds.max })).rowsCopied).toBe(0);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  const cases: Array<[string, string, string, RegExp]> = [
    ['UNIQUE over duplicates', `INSERT INTO dl VALUES (1, 'x', 1, 'abc', 1.25, 1), (2, 'x', 2, 'abc', 1.5, 2)`, 'ADD CONSTRAINT dl_e_uniq UNIQUE (e)', /dl_e_uniq/],
    ['NOT NULL over NULLs', `INSERT INTO dl VALUES (1, 'x', NULL, 'abc', 1.25, 1)`, 'ALTER COLUMN n SET NOT NULL', /column n .*NOT NULL/],
    ['varchar narrowing', `INSERT INTO dl VALUES (1, 'x', 1, 'abcdef', 1.25, 1)`, 'ALTER COLUMN s TYPE varchar(3)', /does not fit|would silently change/],
    ['numeric scale narrowing', `INSERT INTO dl VALUES (1, 'x', 1, 'abc', 1.25, 1)`, 'ALTER COLUMN num TYPE numeric(10,1)', /column num .*1\.25/],
    ['bigint to int overflow', `INSERT INTO dl VALUES (1, 'x', 1, 'abc', 1.25, 9999999999)`, 'ALTER COLUMN big TYPE int', /does not fit/],
    ['numeric to int rounding', `INSERT INTO dl VALUES (1, 'x', 1, 'abc', 1.5, 1)`, 'ALTER COLUMN num TYPE int', /column num .*1\.5/],
  ];
  for (const [title, insert, alter, message] of cases) {
    it(`refuses ${title} with DataLossError, original untouched`, async () => {
      await admin.query(`DROP TABLE IF EXISTS dl`);
      await admin.query(`CREATE TABLE dl (id int PRIMARY KEY, e text, n int, s varchar(10), num numeric(10,2), big bigint)`);
      await admin.query(insert);
      const before = await tableText(admin, 'dl');
      const { names, plan } = await shadowFor('dl', alter, `dl-${title}`);
      const err = await session.copier.copyChunk(plan, { after: null, upTo: ['100'] }).catch((e) => e);
      expect(err).toBeInstanceOf(DataLossError);
      expect(err.message).toMatch(message);
      expect(err.message).toMatch(/original table is untouched/);
      expect(await tableText(admin, 'dl')).toEqual(before);
      expect((await admin.query(`SELECT count(*)::int AS n FROM ${names.shadow}`)).rows[0].n).toBe(0);
      await session.dropArtefacts(names, { keepBackup: false });
    });
  }

  it('with deferred indexes, a new UNIQUE over duplicates fails when the indexes are built', async () => {
    await admin.query(`DROP TABLE IF EXISTS dl`);
    await admin.query(`CREATE TABLE dl (id int PRIMARY KEY, e text, n int, s varchar(10), num numeric(10,2), big bigint)`);
    await admin.query(`CREATE INDEX dl_n ON dl (n)`);
    await admin.query(`INSERT INTO dl VALUES (1, 'x', 1, 'abc', 1.25, 1), (2, 'x', 2, 'abc', 1.5, 2)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'dl' }))!;
    const names = session.artefactNames(original.ref, 'dl-deferred');
    const alter = 'ADD CONSTRAINT dl_e_uniq UNIQUE (e)';
    const shadow = await session.createShadow(original, alter, names, { deferIndexes: true });
    expect(shadow.indexes.map((i) => i.primary)).toEqual([true]);
    const plan = makePlan(original, shadow, session.analyzeAlter(alter));
    expect((await session.copier.copyChunk(plan, { after: null, upTo: ['100'] })).rowsCopied).toBe(2);
    const err = await session.finishShadow(shadow.ref).catch((e) => e);
    expect(err).toBeInstanceOf(DataLossError);
    expect(err.message).toMatch(/dl_e_uniq/);
    // Without the duplicate the build succeeds and restores names and comment.
    await admin.query(`DELETE FROM ${names.shadow} WHERE id = 2`);
    const done = await session.finishShadow(shadow.ref);
    expect(done.indexes.map((i) => i.name).sort()).toEqual([`${names.shadow}_n_idx`, `${names.shadow}_pkey`, 'dl_e_uniq'].sort());
    const con = await admin.query(`SELECT contype FROM pg_constraint WHERE conname = 'dl_e_uniq'`);
    expect(con.rows).toEqual([{ contype: 'u' }]);
    expect((await admin.query(`SELECT obj_description($1::regclass, 'pg_class') AS d`, [names.shadow])).rows[0].d).toBeNull();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('converts text to integer as USING col::integer would, and refuses garbage', async () => {
    await admin.query(`CREATE TABLE tx (id int PRIMARY KEY, n text)`);
    await admin.query(`INSERT INTO tx VALUES (1, '007'), (2, '-5'), (3, NULL)`);
    const { names, plan } = await shadowFor('tx', 'ALTER COLUMN n TYPE integer USING n::integer', 'tx-job');
    expect((await session.copier.copyChunk(plan, { after: null, upTo: ['10'] })).rowsCopied).toBe(3);
    expect((await admin.query(`SELECT array_agg(n ORDER BY id)::text AS a FROM ${names.shadow}`)).rows[0].a).toBe('{7,-5,NULL}');
    // The applier converts the same way.
    await session.applier.apply(plan, [{ kind: 'insert', after: { id: '4', n: '42' } }, { kind: 'update', before: null, after: { id: '1', n: '8' } }]);
    expect((await admin.query(`SELECT array_agg(n ORDER BY id)::text AS a FROM ${names.shadow}`)).rows[0].a).toBe('{8,-5,NULL,42}');
    await admin.query(`INSERT INTO tx VALUES (5, 'five')`);
    const err = await session.copier.copyChunk(plan, { after: ['4'], upTo: ['10'] }).catch((e) => e);
    expect(err).toBeInstanceOf(DataLossError);
    expect(err.message).toMatch(/five/);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('a widening change copies fine', async () => {
    await admin.query(`DROP TABLE IF EXISTS dl`);
    await admin.query(`CREATE TABLE dl (id int PRIMARY KEY, e text, n int, s varchar(10), num numeric(10,2), big bigint)`);
    await admin.query(`INSERT INTO dl VALUES (1, 'x', 2147483647, 'abcdefghij', 12345678.99, 1)`);
    const { names, plan } = await shadowFor('dl', 'ALTER COLUMN n TYPE bigint, ALTER COLUMN s TYPE varchar(20), ALTER COLUMN num TYPE numeric(12,3)', 'dl-widen');
    expect((await session.copier.copyChunk(plan, { after: null, upTo: ['100'] })).rowsCopied).toBe(1);
    const r = await admin.query(`SELECT (id, e, n, s, num, big)::text AS t FROM ${names.shadow}`);
    expect(r.rows[0].t).toBe('(1,x,2147483647,abcdefghij,12345678.990,1)');
    await session.dropArtefacts(names, { keepBackup: false });
  });
});

describe('copier at the copy snapshot', () => {
  /**
   * A fresh copier reading `table` (ids 1..rows) in a snapshot exported now, as a new
   * job's copy does. `commitUnseen()` makes the next chunk's COMMIT go through and then
   * fail on the client, as a connection lost during COMMIT does.
   */
  async function atSnapshot(
    table: string,
    rows: number,
    work: (copier: PostgresCopier, plan: CopyPlan, shadow: string, commitUnseen: () => void) => Promise<void>,
  ): Promise<void> {
    await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, ${rows}) g`);
    const { names, plan } = await shadowFor(table, 'ADD COLUMN w int', `${table}-job`);
    const exporter = await pgConnect(url);
    const pool = session.ctx.pool;
    let unseen = false;
    const flaky = {
      query: pool.query.bind(pool),
      connect: async () => {
        const client = await pool.connect();
        if (unseen) {
          unseen = false;
          const query = client.query.bind(client) as (text: string, ...rest: unknown[]) => Promise<unknown>;
          client.query = (async (text: string, ...rest: unknown[]) => {
            const r = await query(text, ...rest);
            if (text === 'COMMIT') throw new Error('Connection terminated unexpectedly');
            return r;
          }) as typeof client.query;
        }
        return client;
      },
    } as unknown as pg.Pool;
    try {
      await exporter.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const copySnapshot = (await exporter.query(`SELECT pg_export_snapshot() AS s`)).rows[0].s as string;
      await work(new PostgresCopier({ ...session.ctx, pool: flaky, copySnapshot }), plan, names.shadow, () => (unseen = true));
    } finally {
      await exporter.end();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  }

  it('after a chunk whose COMMIT went through unseen, its retry replaces the rows it wrote', async () => {
    await atSnapshot('snapc', 100, async (copier, plan, shadow, commitUnseen) => {
      // Written after the snapshot: not copied.
      await admin.query(`UPDATE snapc SET v = 'later' WHERE id = 10`);
      expect((await copier.copyChunk(plan, { after: null, upTo: ['40'] })).rowsCopied).toBe(40);
      commitUnseen();
      await expect(copier.copyChunk(plan, { after: ['40'], upTo: ['70'] })).rejects.toThrow(/Connection terminated/);
      expect((await admin.query(`SELECT count(*)::int AS n FROM ${shadow}`)).rows[0].n).toBe(70);
      // Its retry deletes what that transaction wrote and copies the range again at the snapshot; the next chunk is plain.
      expect((await copier.copyChunk(plan, { after: ['40'], upTo: ['70'] })).rowsCopied).toBe(30);
      expect((await copier.copyChunk(plan, { after: ['70'], upTo: ['100'] })).rowsCopied).toBe(30);
      expect(await tableText(admin, `(SELECT id, v FROM ${shadow})`, '1')).toEqual(
        await tableText(admin, `(SELECT id, CASE WHEN id = 10 THEN 'v10' ELSE v END AS v FROM snapc)`, '1'),
      );
    });
  });

  it('a fresh copier at the snapshot inserts plainly: a key already in the shadow is a loud duplicate, never a silent skip', async () => {
    await atSnapshot('snapd', 10, async (copier, plan, shadow) => {
      await admin.query(`INSERT INTO ${shadow} (id, v) VALUES (5, 'stray')`);
      await expect(copier.copyChunk(plan, { after: null, upTo: ['10'] })).rejects.toThrow(DataLossError);
    });
  });
});

describe('invariant 3: a row deleted or updated while its chunk is copied', () => {
  it('blocks the writer until the chunk commits; the stream then applies it; the shadow ends right', async () => {
    await admin.query(`CREATE TABLE race (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO race SELECT g, 'v' || g FROM generate_series(1, 20) g`);
    const { names, plan } = await shadowFor('race', 'ADD COLUMN extra int', 'race-job');
    const stream = session.openChangeStream(plan, names, 'race-job');
    await stream.start();
    const w1 = await pgConnect(url);
    const w2 = await pgConnect(url);
    try {
      const settled: string[] = [];
      let del!: Promise<unknown>;
      let upd!: Promise<unknown>;
      await session.copier.copyChunk(plan, { after: null, upTo: ['20'] }, async () => {
        // The chunk's transaction is open and has copied rows 1..20.
        del = w1.query(`DELETE FROM race WHERE id = 3`).then(() => settled.push('delete'));
        upd = w2.query(`UPDATE race SET v = 'updated' WHERE id = 5`).then(() => settled.push('update'));
        // Both writers wait on the chunk's share locks.
        for (let i = 0; i < 50; i++) {
          const r = await admin.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ~ '^(DELETE|UPDATE) .*race'`,
          );
          if (r.rows[0].n === 2) break;
          await new Promise((res) => setTimeout(res, 50));
        }
        const waiting = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ~ '^(DELETE|UPDATE) .*race'`);
        expect(waiting.rows[0].n).toBe(2);
        expect(settled).toEqual([]);
      });
      await Promise.all([del, upd]);
      expect(settled.sort()).toEqual(['delete', 'update']);
      // Before the stream is applied, the shadow still has the copied versions...
      const mid = await admin.query(`SELECT id, v FROM ${names.shadow} WHERE id IN (3, 5) ORDER BY id`);
      expect(mid.rows).toEqual([{ id: 3, v: 'v3' }, { id: 5, v: 'v5' }]);
      // ...and the stream, applied after the chunk, fixes both.
      await syncTo(session, stream, plan, 'race-1');
      expect(await tableText(admin, `(SELECT id, v FROM ${names.shadow})`)).toEqual(await tableText(admin, `(SELECT id, v FROM race)`));
      const after = await admin.query(`SELECT id, v FROM ${names.shadow} WHERE id IN (3, 5) ORDER BY id`);
      expect(after.rows).toEqual([{ id: 5, v: 'updated' }]);
    } finally {
      await w1.end();
      await w2.end();
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('copier and application row locks', () => {
  it('gives up quickly (transient) instead of holding its locks while an application transaction holds a row', async () => {
    const { TransientDatabaseError } = await import('../../src/util/errors.js');
    await admin.query(`CREATE TABLE hot (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO hot SELECT g, 0 FROM generate_series(1, 100) g`);
    const { names, plan } = await shadowFor('hot', 'ADD COLUMN w int', 'hot-job');
    const app = await pgConnect(url);
    try {
      await app.query(`BEGIN; UPDATE hot SET v = 1 WHERE id = 50`);
      const t0 = Date.now();
      const err = await session.copier.copyChunk(plan, { after: null, upTo: ['100'] }).catch((e) => e);
      expect(err).toBeInstanceOf(TransientDatabaseError);
      expect(Date.now() - t0).toBeLessThan(3000);
      await app.query('COMMIT');
      expect((await session.copier.copyChunk(plan, { after: null, upTo: ['100'] })).rowsCopied).toBe(100);
    } finally {
      await app.end();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});
