import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { PreflightCheck, PreflightContext, TableRef } from '../../src/dialects/dialect.js';
import { freshDb, openSession } from './helpers.js';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { randomBytes } from 'node:crypto';
import { newJob } from '../support/alter.js';
import { PreflightError } from '../../src/util/errors.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgpre'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

async function runChecks(s: PostgresSession, table: TableRef): Promise<Record<string, { ok: boolean; message: string }>> {
  const ctx: PreflightContext = { table, info: await s.inspectTable(table), alter: null, plan: null };
  const out: Record<string, { ok: boolean; message: string }> = {};
  for (const c of s.preflightChecks() as PreflightCheck[]) out[c.name] = await c.run(ctx);
  return out;
}

describe('preflight', () => {
  it('passes a normal table', async () => {
    await admin.query(`CREATE TABLE good (id int PRIMARY KEY, v text)`);
    const r = await runChecks(session, { schema: 'public', name: 'good' });
    for (const [name, res] of Object.entries(r)) expect({ name, ...res }).toMatchObject({ name, ok: true });
    expect(Object.keys(r).sort()).toEqual(['alter-supported', 'dependents', 'has-key', 'logged-table', 'new-index-names', 'no-leftovers', 'not-partitioned', 'privileges', 'replica-identity', 'replication-capacity', 'server-version', 'wal-level']);
  });

  it('refuses a table without a primary key, and one with REPLICA IDENTITY NOTHING', async () => {
    await admin.query(`CREATE TABLE nokey (a int, b text)`);
    const r = await runChecks(session, { schema: 'public', name: 'nokey' });
    expect(r['has-key']!.ok).toBe(false);
    expect(r['has-key']!.message).toMatch(/no primary key.*ADD PRIMARY KEY/);
    await admin.query(`CREATE TABLE ri (a int NOT NULL, b text)`);
    await admin.query(`CREATE UNIQUE INDEX ri_a ON ri (a)`);
    await admin.query(`ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_a`);
    expect((await runChecks(session, { schema: 'public', name: 'ri' }))['has-key']!.ok).toBe(true);
    await admin.query(`CREATE TABLE nothing (id int PRIMARY KEY)`);
    await admin.query(`ALTER TABLE nothing REPLICA IDENTITY NOTHING`);
    const n = await runChecks(session, { schema: 'public', name: 'nothing' });
    expect(n['has-key']!.message).toMatch(/REPLICA IDENTITY NOTHING/);
  });

  it('refuses UNLOGGED tables, table renames, and a replica identity that lacks the copy key', async () => {
    await admin.query(`CREATE UNLOGGED TABLE unl (id int PRIMARY KEY)`);
    expect((await runChecks(session, { schema: 'public', name: 'unl' }))['logged-table']!.message).toMatch(/UNLOGGED.*SET LOGGED/);
    const ref = { schema: 'public', name: 'good' };
    const info = await session.inspectTable(ref);
    const ren = (await Promise.all(session.preflightChecks().filter((c) => c.name === 'alter-supported').map((c) => c.run({ table: ref, info, alter: session.analyzeAlter('RENAME TO other'), plan: null }))))[0]!;
    expect(ren.ok).toBe(false);
    expect(ren.message).toMatch(/renames the table/);
    await admin.query(`CREATE TABLE rid (id int PRIMARY KEY, code int NOT NULL UNIQUE)`);
    await admin.query(`ALTER TABLE rid REPLICA IDENTITY USING INDEX rid_code_key`);
    const ridRef = { schema: 'public', name: 'rid' };
    const ridInfo = (await session.inspectTable(ridRef))!;
    const plan = { original: ridInfo, shadow: ridInfo, key: [{ source: 'id', target: 'id' }], columns: [], newUniqueIndexes: [] };
    const check = session.preflightChecks().find((c) => c.name === 'replica-identity')!;
    const res = await check.run({ table: ridRef, info: ridInfo, alter: null, plan });
    expect(res.ok).toBe(false);
    expect(res.message).toMatch(/lacks key column\(s\) id.*REPLICA IDENTITY DEFAULT/);
    const ok = await check.run({ table: ridRef, info: ridInfo, alter: null, plan: { ...plan, key: [{ source: 'code', target: 'code' }] } });
    expect(ok.ok).toBe(true);
  });

  it('refuses materialized views on the table and dependents the role does not own', async () => {
    await admin.query(`CREATE TABLE mv_base (id int PRIMARY KEY)`);
    await admin.query(`CREATE MATERIALIZED VIEW mv AS SELECT id FROM mv_base`);
    const r = await runChecks(session, { schema: 'public', name: 'mv_base' });
    expect(r.dependents!.ok).toBe(false);
    expect(r.dependents!.message).toMatch(/materialized view\(s\) public\.mv/);
    await admin.query(`DROP MATERIALIZED VIEW mv`);
    expect((await runChecks(session, { schema: 'public', name: 'mv_base' })).dependents!.ok).toBe(true);
  });

  it('refuses partitioned tables and partitions', async () => {
    await admin.query(`CREATE TABLE parted (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await admin.query(`CREATE TABLE parted_2024 PARTITION OF parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    const p = await runChecks(session, { schema: 'public', name: 'parted' });
    expect(p['not-partitioned']!.ok).toBe(false);
    expect(p['not-partitioned']!.message).toMatch(/partitioned table/);
    const c = await runChecks(session, { schema: 'public', name: 'parted_2024' });
    expect(c['not-partitioned']!.message).toMatch(/is a partition.*DETACH/);
  });

  it('lists every missing privilege of a restricted role', async () => {
    const role = `restricted_${randomBytes(3).toString('hex')}`;
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await admin.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
    try {
      const u = new URL(url);
      u.username = role;
      const s = await openSession(u.toString());
      try {
        const r = await runChecks(s, { schema: 'public', name: 'good' });
        expect(r.privileges!.ok).toBe(false);
        expect(r.privileges!.message).toMatch(/REPLICATION/);
        expect(r.privileges!.message).toMatch(/ownership of public\.good/);
        expect(r.privileges!.message).toMatch(/CREATE on schema public/);
        expect(r.privileges!.message).toMatch(/CREATE on the database/);
        expect(r.privileges!.message).toMatch(/postgres-grants\.md/);
      } finally {
        await s.close();
      }
      // With the grants of docs/postgres-grants.md the check passes.
      const db = (await admin.query('SELECT current_database() AS d')).rows[0].d;
      await admin.query(`ALTER ROLE ${role} WITH REPLICATION`);
      await admin.query(`ALTER TABLE good OWNER TO ${role}`);
      await admin.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
      await admin.query(`GRANT CREATE ON DATABASE "${db}" TO ${role}`);
      const s2 = await openSession(u.toString());
      try {
        expect((await runChecks(s2, { schema: 'public', name: 'good' })).privileges).toEqual({ ok: true, message: 'has the privileges the job needs' });
      } finally {
        await s2.close();
      }
    } finally {
      await admin.query(`ALTER TABLE good OWNER TO postgres`);
      await admin.query(`DROP OWNED BY ${role}`);
      await admin.query(`DROP ROLE ${role}`);
    }
  });
});

describe('preflight on differently configured servers', () => {
  let replica: RunningServer | null = null;
  let tight: RunningServer | null = null;
  afterAll(async () => {
    await replica?.stop();
    await tight?.stop();
  });

  it('refuses wal_level=replica', async () => {
    replica = await startPostgres({ extraArgs: ['-c', 'wal_level=replica', '-c', 'max_connections=20'] });
    const s = await openSession(replica.adminUrl('postgres'));
    try {
      const r = await runChecks(s, { schema: 'public', name: 'whatever' });
      expect(r['wal-level']).toEqual({ ok: false, message: expect.stringMatching(/wal_level is replica.*wal_level = logical.*restart/) });
    } finally {
      await s.close();
    }
  });

  it('refuses when no replication slot or WAL sender is free', async () => {
    tight = await startPostgres({ extraArgs: ['-c', 'max_replication_slots=1', '-c', 'max_wal_senders=1', '-c', 'max_connections=20'] });
    const s = await openSession(tight.adminUrl('postgres'));
    try {
      expect((await runChecks(s, { schema: 'public', name: 'x' }))['replication-capacity']!.ok).toBe(true);
      await s.ctx.pool.query(`SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')`);
      const r = await runChecks(s, { schema: 'public', name: 'x' });
      expect(r['replication-capacity']!.ok).toBe(false);
      expect(r['replication-capacity']!.message).toMatch(/all 1 replication slots are taken.*max_replication_slots/);
      await s.ctx.pool.query(`SELECT pg_drop_replication_slot('someone_else')`);
    } finally {
      await s.close();
    }
  });
});

describe('server version', () => {
  it('accepts the test server (PostgreSQL 15 or newer) and names its version', async () => {
    const r = await runChecks(session, { schema: 'public', name: 'whatever' });
    const num = Number((await admin.query(`SELECT current_setting('server_version_num') AS n`)).rows[0].n);
    expect(num).toBeGreaterThanOrEqual(150000);
    expect(r['server-version']).toEqual({ ok: true, message: expect.stringMatching(new RegExp(`^PostgreSQL ${Math.floor(num / 10000)}\\.\\d+ \\(15 or newer is needed\\)`)) });
  });

  it('refuses PostgreSQL 14 at preflight (exit 3), naming the version found and the minimum, with nothing created', async () => {
    await admin.query(`CREATE TABLE old_srv (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO old_srv SELECT g, 'v' || g FROM generate_series(1, 10) g`);
    // The server answers as a PostgreSQL 14 would; everything else is the real server.
    const real = pg.Pool.prototype.query;
    const spy = vi.spyOn(pg.Pool.prototype, 'query').mockImplementation(function (this: pg.Pool, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
      if (text?.includes('server_version_num')) return Promise.resolve({ rows: [{ num: '140012', version: '14.12 (Debian 14.12-1.pgdg120+1)' }], rowCount: 1 }) as never;
      return (real as (...a: unknown[]) => unknown).apply(this, args) as never;
    });
    const job = newJob(url, 'old_srv', 'ADD COLUMN w int');
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(false);
      expect(report.checks.find((c) => c.check === 'server-version')).toMatchObject({ phase: 'connect', ok: false });
      const err = await job.execute(report).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(PreflightError);
      expect((err as PreflightError).exitCode).toBe(3);
      expect((err as Error).message).toMatch(/PostgreSQL 14\.12, but shadowshift needs PostgreSQL 15 or newer.*prattrs/);
    } finally {
      await job.close();
      spy.mockRestore();
    }
    const left = await admin.query(`SELECT relname FROM pg_class WHERE relname LIKE '%old_srv%' AND relkind = 'r'`);
    expect(left.rows.map((r) => r.relname)).toEqual(['old_srv']);
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()`)).rows[0].n).toBe(0);
  });
});
