// Everything a user can get wrong fails before anything changes, naming the
// cause and the fix. Both dialects. Also: identifiers with quotes, backticks,
// spaces and unicode work end to end.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { freePort } from '../support/servers.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('bad'), tlsParam: 'ssl=require', series: (n: number) => `SELECT seq, seq FROM ${mysqlSeq(1, n)}` },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('bad'), tlsParam: 'sslmode=require', series: (n: number) => `SELECT g, g FROM generate_series(1, ${n}) g` },
];

describe.each(testedDialects(cases))('$dialect: bad input changes nothing', ({ dialect, createDb, tlsParam, series }) => {
  let url: string;
  let db: Db;
  let dir: string;
  const q = (n: string) => quoteIdent(dialect, n);

  async function state(): Promise<string> {
    const tables = await db.query<Record<string, string>>(dialect === 'mysql' ? 'SHOW TABLES' : "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    const [sum] = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q('t')}`);
    return JSON.stringify({ tables: tables.map((r) => Object.values(r)[0]).sort(), sum });
  }

  beforeAll(async () => {
    url = (await createDb()).url;
    db = await openDb(url);
    dir = mkdtempSync(join(tmpdir(), 'ss-bad-'));
    await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await db.exec(`INSERT INTO ${q('t')} ${series(5000)}`);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectFails(run: () => Promise<unknown>, message: RegExp): Promise<void> {
    const before = await state();
    const err = await run().then(() => null, (e: unknown) => e);
    expect(err, 'should have failed').toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(message);
    expect(await state()).toEqual(before);
  }

  it('unknown table', async () => {
    await expectFails(() => runAlter(url, 'no_such_table', 'ADD COLUMN x INT'), /no_such_table does not exist; check --table/);
  });

  it('unreachable server', async () => {
    const u = new URL(url);
    u.port = String(await freePort());
    await expectFails(() => runAlter(u.toString(), 't', 'ADD COLUMN x INT'), /cannot connect to .*(ECONNREFUSED|refused)/i);
  });

  it('wrong credentials, without echoing the password', async () => {
    const u = new URL(url);
    u.username = 'nobody_here';
    u.password = 'wrong-secret-pw';
    const err = await runAlter(u.toString(), 't', 'ADD COLUMN x INT').then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/cannot connect to .*(denied|authentication|does not exist|password)/i);
    expect(err?.message).not.toContain('wrong-secret-pw');
  });

  it('TLS required but the server offers none', async () => {
    const u = `${url}${url.includes('?') ? '&' : '?'}${tlsParam}`;
    await expectFails(() => runAlter(u, 't', 'ADD COLUMN x INT'), /cannot connect to .*(SSL|TLS|ssl)/i);
  });

  it('an empty ALTER', async () => {
    await expectFails(() => runAlter(url, 't', '   '), /--alter is empty/);
  });

  it('a second job on the same table is refused while the first runs', async () => {
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const first = newJob(url, 't', 'ADD COLUMN first_col INT', { postponeCutoverFlagFile: flag });
    const running = first.prepare().then((r) => first.execute(r));
    running.catch(() => undefined);
    try {
      await waitUntil(() => first.status().state === 'postponed' || first.status().state === 'failed', 'the first job to postpone');
      const second = newJob(url, 't', 'ADD COLUMN second_col INT');
      try {
        const report = await second.prepare();
        const err = await second.execute(report).then(() => null, (e: unknown) => e as Error);
        expect(err?.message).toMatch(/another .*(job|migration).*\bt\b|already running|is locked/i);
      } finally {
        await second.close();
      }
    } finally {
      first.controls.abort('test over');
      await running.catch(() => undefined);
      await first.close();
      rmSync(flag, { force: true });
    }
  });

  it('resuming with a different ALTER, or with nothing to resume', async () => {
    await expectFails(() => runAlter(url, 't', 'ADD COLUMN x INT', { resume: true }), /no checkpoint .* to resume; run without --resume/);

    // Leave a resumable job's state behind, as a SIGTERM would.
    const flag = join(dir, 'postpone-resume');
    writeFileSync(flag, '');
    const job = newJob(url, 't', 'ADD COLUMN kept INT', { resumable: true, postponeCutoverFlagFile: flag, checkpointIntervalSeconds: 0.1 });
    try {
      const running = job.prepare().then((r) => job.execute(r));
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'postponed');
      await new Promise((r) => setTimeout(r, 300));
      job.controls.abort('SIGTERM in a test', { keepState: true });
      await running.catch(() => undefined);
    } finally {
      await job.close();
    }
    await expectFails(() => runAlter(url, 't', 'ADD COLUMN other INT', { resume: true }), /checkpoint .* is for a different ALTER .*ADD COLUMN kept INT/);
    await expectFails(() => runAlter(url, 't', 'ADD COLUMN kept INT', { resume: true, checkpointMaxAgeSeconds: 0.001 }), /over --checkpoint-max-age/);
    // The right ALTER resumes and finishes.
    rmSync(flag, { force: true });
    const done = await runAlter(url, 't', 'ADD COLUMN kept INT', { resume: true });
    expect(done.rowsCopied).toBe(5000);
  });
});

describe.each(testedDialects(cases))('$dialect: identifiers with quotes, backticks, spaces and unicode', ({ dialect, createDb, series }) => {
  it('alters such a table and carries every column', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    // MySQL identifiers are limited to the Basic Multilingual Plane: no emoji there.
    const table = dialect === 'mysql' ? 'we"ird `tab le` ✓ ü' : 'we"ird `tab le` 🚀';
    try {
      await db.exec(`CREATE TABLE ${q(table)} (${q('i d')} INT PRIMARY KEY, ${q('va"l`ue ü')} INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q(table)} ${series(3000)}`);
      // --table takes db.table on MySQL; a name with dots or backticks is given quoted.
      const tableArg = dialect === 'mysql' ? q(table) : table;
      const result = await runAlter(url, tableArg, `ADD COLUMN ${q('new "col` ✓')} INT NOT NULL DEFAULT 4`);
      expect(result.rowsCopied).toBe(3000);
      const [row] = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n, SUM(${q('new "col` ✓')}) AS s FROM ${q(table)} WHERE ${q('va"l`ue ü')} = ${q('i d')}`);
      expect(String(row!.n)).toBe('3000');
      expect(String(row!.s)).toBe('12000');
    } finally {
      await db.close();
    }
  });
});
