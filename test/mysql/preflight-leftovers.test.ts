// Each preflight check fails with a message naming the cause and the fix; the job
// lock; cleanup's leftovers.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { PreflightCheck, PreflightContext } from '../../src/dialects/dialect.js';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { buildCopyPlan } from '../../src/engine/copy-plan.js';
import { missingPrivileges, parseGrant } from '../../src/dialects/mysql/checks/privileges.js';
import { freshDb, openSession, prepareShadow, tableNames } from './helpers.js';

async function runPhase(session: MysqlSession, phase: PreflightCheck['phase'], ctx: PreflightContext): Promise<Record<string, { ok: boolean; message: string }>> {
  const out: Record<string, { ok: boolean; message: string }> = {};
  for (const c of session.preflightChecks().filter((c) => c.phase === phase)) out[c.name] = await c.run(ctx);
  return out;
}

describe('connect-phase checks on a misconfigured server', () => {
  let server: RunningServer;
  let session: MysqlSession;
  beforeAll(async () => {
    server = await startMariaDb({ extraArgs: ['--skip-log-bin', '--binlog-format=STATEMENT', '--binlog-row-image=MINIMAL', '--binlog-row-metadata=NO_LOG'] });
    const c = await mysqlConnect(server.adminUrl('mysql'));
    await c.query('CREATE DATABASE app');
    await c.end();
    session = await openSession(server.adminUrl('app'));
  }, 60_000);
  afterAll(async () => {
    await session?.close();
    await server?.stop();
  });

  it('names every binlog setting that is wrong, and how to fix it', async () => {
    const r = await runPhase(session, 'connect', { table: { schema: 'app', name: 't' }, info: null, alter: null, plan: null });
    expect(r['binary-log']).toMatchObject({ ok: false, message: expect.stringMatching(/log_bin=OFF[\s\S]*--log-bin/) });
    expect(r['binlog-format']).toMatchObject({ ok: false, message: expect.stringMatching(/binlog_format is STATEMENT[\s\S]*SET GLOBAL binlog_format = 'ROW'/) });
    expect(r['binlog-row-image']).toMatchObject({ ok: false, message: expect.stringMatching(/binlog_row_image is MINIMAL[\s\S]*NULL[\s\S]*SET GLOBAL/) });
    expect(r['binlog-row-metadata']).toMatchObject({ ok: false, message: expect.stringMatching(/binlog_row_metadata is NO_LOG[\s\S]*wrong columns[\s\S]*FULL/) });
    expect(r.privileges!.ok).toBe(true); // root
  });
});

describe('checks on the shared server', () => {
  let session: MysqlSession;
  let admin: Connection;
  let schema: string;
  let url: string;
  beforeAll(async () => {
    ({ session, admin, name: schema, url } = await freshDb('pre'));
  });
  afterAll(async () => {
    await session?.close();
    await admin?.end();
  });

  it('connect phase passes on a well-configured server and says what a session override would do', async () => {
    const r = await runPhase(session, 'connect', { table: { schema, name: 't' }, info: null, alter: null, plan: null });
    for (const v of Object.values(r)) expect(v.ok).toBe(true);
    expect(r['binlog-format']!.message).toMatch(/session[\s\S]*STATEMENT/);
    expect(r['binlog-row-image']!.message).toMatch(/session[\s\S]*MINIMAL/);
  });

  it('privileges: lists exactly what is missing', async () => {
    const user = `lim_${Date.now().toString(36)}`;
    await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
    await admin.query(`GRANT SELECT, INSERT, LOCK TABLES ON \`${schema}\`.* TO '${user}'@'%'`);
    await admin.query(`GRANT REPLICATION SLAVE ON *.* TO '${user}'@'%'`);
    const u = new URL(url);
    u.username = user;
    u.password = 'pw';
    const limited = await openSession(u.toString());
    try {
      const r = await runPhase(limited, 'connect', { table: { schema, name: 't' }, info: null, alter: null, plan: null });
      expect(r.privileges!.ok).toBe(false);
      const m = r.privileges!.message;
      expect(m).toContain(`UPDATE on ${schema}, DELETE on ${schema}, CREATE on ${schema}, DROP on ${schema}, ALTER on ${schema}, INDEX on ${schema}, CREATE TEMPORARY TABLES on ${schema}, BINLOG MONITOR (global)`);
      expect(m).not.toMatch(/SELECT on|INSERT on|LOCK TABLES on|REPLICATION SLAVE/);
      expect(m).toContain(`GRANT UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE TEMPORARY TABLES ON \`${schema}\`.*`);
      expect(m).toContain('GRANT BINLOG MONITOR ON *.*');
    } finally {
      await limited.close();
      await admin.query(`DROP USER '${user}'@'%'`);
    }
  });

  it('privileges: grant parsing handles ALL, wildcards and column grants', () => {
    const g = [
      "GRANT ALL PRIVILEGES ON `app\\_%`.* TO `u`@`%`",
      "GRANT SELECT (a, b), UPDATE ON `other`.* TO `u`@`%`",
      "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*X'",
    ].map((l) => parseGrant(l)!);
    expect(missingPrivileges(g, 'app_1', 'mariadb')).toEqual({ schema: [], global: [] });
    expect(missingPrivileges(g, 'appx1', 'mariadb').schema).toContain('SELECT');
    expect(missingPrivileges(g, 'other', 'mysql').schema).toContain('SELECT');
    expect(missingPrivileges([], 'x', 'mysql').global).toEqual(['REPLICATION SLAVE', 'REPLICATION CLIENT']);
  });

  it('table phase: missing table, foreign keys (both sides), triggers (moved, or refused when their temporary name is taken), no usable key', async () => {
    await admin.query('CREATE TABLE p (id INT PRIMARY KEY)');
    await admin.query('CREATE TABLE c (id INT PRIMARY KEY, p_id INT, CONSTRAINT fk_c_p FOREIGN KEY (p_id) REFERENCES p (id))');
    await admin.query('CREATE TABLE trg (id INT PRIMARY KEY, n INT)');
    await admin.query('CREATE TRIGGER trg_bi BEFORE INSERT ON trg FOR EACH ROW SET NEW.n = 1');
    await admin.query('CREATE TABLE nokey (a INT, b INT NULL, UNIQUE KEY u_b (b))');
    await admin.query('CREATE TABLE uk (a INT NOT NULL, UNIQUE KEY u_a (a))');
    const check = async (name: string) => {
      const info = await session.inspectTable({ schema, name });
      return runPhase(session, 'table', { table: { schema, name }, info, alter: session.analyzeAlter('ADD COLUMN z INT'), plan: null });
    };
    expect((await check('missing'))['table-exists']).toMatchObject({ ok: false, message: expect.stringMatching(/does not exist/) });
    // Foreign keys move with the swap (test/mysql/foreign-keys-*.test.ts); the plan says what happens to each.
    expect((await check('c'))['foreign-keys']).toMatchObject({ ok: true, message: 'fk_c_p (to p) is added to the new table at the cut-over' });
    expect((await check('p'))['foreign-keys']).toMatchObject({ ok: true, message: 'c.fk_c_p is repointed at the new table under the cut-over\'s lock' });
    await admin.query('CREATE TABLE c2 (id INT PRIMARY KEY, p_id INT, CONSTRAINT fk_c_p_ssnew FOREIGN KEY (p_id) REFERENCES p (id))');
    expect((await check('c'))['foreign-keys']).toMatchObject({ ok: false, message: expect.stringMatching(/foreign key name fk_c_p_ssnew \(on c2\) already exists[\s\S]*Drop or rename it/) });
    // Triggers move with the swap (test/mysql/triggers.test.ts); what would stop the move is refused.
    expect((await check('trg'))['triggers']).toMatchObject({ ok: true, message: expect.stringMatching(/triggers trg_bi \(BEFORE INSERT, definer root@localhost\) move to the new table/) });
    await admin.query('CREATE TABLE trg_other (id INT PRIMARY KEY)');
    await admin.query('CREATE TRIGGER trg_bi_ssnew BEFORE INSERT ON trg_other FOR EACH ROW SET NEW.id = NEW.id');
    expect((await check('trg'))['triggers']).toMatchObject({ ok: false, message: expect.stringMatching(/trigger name trg_bi_ssnew already exists[\s\S]*Drop or rename it/) });
    expect((await check('nokey'))['has-key']).toMatchObject({ ok: false, message: expect.stringMatching(/no primary key[\s\S]*ADD PRIMARY KEY/) });
    expect((await check('uk'))['has-key']).toMatchObject({ ok: true, message: expect.stringMatching(/u_a/) });
    const ok = await check('p');
    expect(ok['has-key']!.ok && ok['triggers']!.ok && ok['table-exists']!.ok).toBe(true);
  });

  it('alter phase: table renames and a lost shared key', async () => {
    await admin.query('CREATE TABLE al (id INT NOT NULL, u INT NOT NULL, PRIMARY KEY (id), UNIQUE KEY u_u (u))');
    const info = (await session.inspectTable({ schema, name: 'al' }))!;
    const run = async (alter: string) => {
      const analysis = session.analyzeAlter(alter);
      const plan = analysis.renamesTable ? null : buildCopyPlan(info, await session.previewShadow(info, alter), analysis).plan;
      return runPhase(session, 'alter', { table: info.ref, info, alter: analysis, plan });
    };
    expect((await run('RENAME TO al2'))['no-table-rename']).toMatchObject({ ok: false, message: expect.stringMatching(/renames the table[\s\S]*RENAME TABLE/) });
    expect((await run('ADD COLUMN z INT'))['shared-key']!.ok).toBe(true);
    // Dropping the primary key still leaves u_u shared.
    expect((await run('DROP PRIMARY KEY'))['shared-key']!.ok).toBe(true);
    expect((await run('DROP PRIMARY KEY, DROP INDEX u_u, ADD PRIMARY KEY (id, u)'))['shared-key']).toMatchObject({ ok: false, message: expect.stringMatching(/no primary key or NOT NULL unique key/) });
  });

  it('job lock: one job per table, named in the error; released on close', async () => {
    await admin.query('CREATE TABLE jl (id INT PRIMARY KEY)');
    const other = await openSession(url);
    try {
      await session.acquireJobLock({ schema, name: 'jl' });
      await expect(other.acquireJobLock({ schema, name: 'jl' })).rejects.toThrow(new RegExp(`already running on ${schema}\\.jl`));
      await session.releaseJobLock({ schema, name: 'jl' });
      await other.acquireJobLock({ schema, name: 'jl' });
    } finally {
      await other.close();
    }
    await session.acquireJobLock({ schema, name: 'jl' });
    await session.releaseJobLock({ schema, name: 'jl' });
  });

  it('leftovers: lists shadow, changelog, backup and sentry (and those of earlier versions); in use while the job lock is held; removes them', async () => {
    await admin.query('CREATE TABLE lo (id INT PRIMARY KEY)');
    const { names } = await prepareShadow(session, schema, 'lo', 'ADD COLUMN z INT', 'feedbeef');
    await admin.query(`CREATE TABLE \`${names.backup}\` (id INT PRIMARY KEY) COMMENT='shadowshift cut-over sentry'`);
    await admin.query(`CREATE TABLE \`lo_ssold_0badf00d\` (id INT PRIMARY KEY)`);
    // Names an earlier shadowshift gave (before every name sorted after the table's).
    await admin.query(`CREATE TABLE \`_lo_ssnew\` (id INT PRIMARY KEY)`);
    await admin.query(`CREATE TABLE \`lo~ssf\` (id INT PRIMARY KEY) COMMENT='shadowshift cut-over sentry'`);
    const mine = async () => (await session.listLeftovers()).filter((l) => /^_?lo[_~]/.test(l.name)).sort((a, b) => a.name.localeCompare(b.name));
    const holder = await openSession(url);
    await holder.acquireJobLock({ schema, name: 'lo' });
    const table = { schema, name: 'lo' };
    expect(await mine()).toEqual([
      { kind: 'backup', name: 'lo_ssold_0badf00d', table, inUse: true },
      { kind: 'sentry', name: 'lo_ssold_feedbeef', table, inUse: true },
      { kind: 'changelog', name: 'lo_sslog', table, inUse: true },
      { kind: 'shadow', name: 'lo_ssnew', table, inUse: true },
      { kind: 'shadow', name: '_lo_ssnew', table, inUse: true },
      { kind: 'sentry', name: 'lo~ssf', table, inUse: true },
    ].sort((a, b) => a.name.localeCompare(b.name)));
    await expect(session.removeLeftover((await mine())[0]!)).rejects.toThrow(/still running/);
    await holder.close();
    let free = await mine();
    for (let i = 0; i < 40 && free.some((l) => l.inUse); i++) {
      await new Promise((r) => setTimeout(r, 50));
      free = await mine();
    }
    expect(free.every((l) => !l.inUse)).toBe(true);
    for (const l of free) await session.removeLeftover(l);
    expect((await tableNames(admin)).filter((t) => /^_?lo[_~]/.test(t))).toEqual([]);
    expect(await tableNames(admin)).toContain('lo');
    await expect(session.removeLeftover({ kind: 'shadow', name: 'lo', inUse: false })).rejects.toThrow(/not a shadowshift table/);
  });

  it('leftovers: each checkpoint, the shared heartbeat table (in use while any job runs) and an empty checkpoint table; removes them', async () => {
    await admin.query('CREATE TABLE lcp (id INT PRIMARY KEY)');
    await admin.query('CREATE TABLE lother (id INT PRIMARY KEY)');
    const ref = { schema, name: 'lcp' };
    const names = session.artefactNames(ref, 'feedcafe', { resumable: true });
    const checkpoint = { version: 1 as const, jobId: 'feedcafe', table: ref, alter: 'ADD COLUMN z INT', names, streamPosition: 'mysql-bin.000001:4', watermark: null, ceiling: null, rowsCopied: 0, savedAt: new Date().toISOString() };
    // What a resumable job killed with SIGKILL leaves in the shared tables: its checkpoint and its heartbeat row.
    await session.checkpoints.save(checkpoint);
    await session.openProbes(names).writeHeartbeat();
    const shared = async () =>
      (await session.listLeftovers()).filter((l) => ['checkpoint', 'checkpoint-table', 'heartbeat-table'].includes(l.kind)).sort((a, b) => a.kind.localeCompare(b.kind));
    const holder = await openSession(url);
    await holder.acquireJobLock({ schema, name: 'lother' });
    expect(await shared()).toEqual([
      { kind: 'checkpoint', name: `${schema}.lcp`, table: ref, inUse: false, resumable: true },
      { kind: 'heartbeat-table', name: '_shadowshift_heartbeat', inUse: true },
    ]);
    await expect(session.removeLeftover((await shared())[1]!)).rejects.toThrow(/still running/);
    await holder.close();
    let free = await shared();
    for (let i = 0; i < 40 && free.some((l) => l.inUse); i++) {
      await new Promise((r) => setTimeout(r, 50));
      free = await shared();
    }
    for (const l of free) await session.removeLeftover(l);
    expect((await tableNames(admin)).filter((t) => t.startsWith('_shadowshift_'))).toEqual([]);

    // A checkpoint table without a checkpoint (its job ended between the delete and the drop).
    await session.checkpoints.save(checkpoint);
    await admin.query('DELETE FROM _shadowshift_checkpoints');
    expect(await shared()).toEqual([{ kind: 'checkpoint-table', name: '_shadowshift_checkpoints', inUse: false }]);
    await session.removeLeftover((await shared())[0]!);
    expect((await tableNames(admin)).filter((t) => t.startsWith('_shadowshift_'))).toEqual([]);
  });

  it('checkpoints: save, load back byte for byte, remove (and the table with the last one)', async () => {
    const ref = { schema, name: 'cp' };
    const cp = {
      version: 1 as const, jobId: 'j1', table: ref, alter: "ADD COLUMN `é` VARCHAR(3) DEFAULT '😀'",
      names: session.artefactNames(ref, 'j1'), streamPosition: 'mysql-bin.000001:4', watermark: '["18446744073709551615"]', ceiling: null, rowsCopied: 3, savedAt: new Date().toISOString(),
    };
    expect(await session.checkpoints.load(ref)).toBeNull();
    await session.checkpoints.save(cp);
    await session.checkpoints.save({ ...cp, rowsCopied: 4 });
    expect(await session.checkpoints.load(ref)).toEqual({ ...cp, rowsCopied: 4 });
    await session.checkpoints.remove(ref);
    expect(await session.checkpoints.load(ref)).toBeNull();
    expect(await tableNames(admin)).not.toContain('_shadowshift_checkpoints');
  });
});
