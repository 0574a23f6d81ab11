// A backfill obeys the engine's throttle signals: --max-load pauses it (no batch
// runs) until the threshold is raised; --critical-load stops the run after the
// batch in flight with the cursor saved, and the next run resumes there. The
// engine jobs `migrate up` starts get the same flags. (Replica lag:
// backfill-replica-lag.test.ts.)

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { openDb, type Db, mysqlSeq } from '../support/db.js';
import { waitUntil } from '../support/alter.js';
import { cli, columnInfo, json, newDatabase, startCli, stderrShows, tempDir, write } from './helpers.js';
import { MigrationRunner } from '../../src/migrations/runner.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';

const ROWS = 5000;

const cases = [
  { dialect: 'mysql' as const, loadName: 'Threads_connected', series: (t: string) => `INSERT INTO ${t} (id) SELECT seq FROM ${mysqlSeq(1, ROWS)}` },
  { dialect: 'postgres' as const, loadName: 'total_backends', series: (t: string) => `INSERT INTO ${t} (id) SELECT g FROM generate_series(1, ${ROWS}) g` },
];

describe.each(cases)('$dialect: backfill throttling', ({ dialect, loadName, series }) => {
  let url: string;
  let db: Db;
  const dirs: string[] = [];

  beforeAll(async () => {
    ({ url, db } = await newDatabase(dialect, 'mbt'));
  });
  afterAll(async () => {
    await db?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function table(name: string): Promise<void> {
    await db.exec(`CREATE TABLE ${name} (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL DEFAULT 0, v BIGINT NULL)`);
    await db.exec(series(name));
  }
  const count = async (sql: string) => Number((await db.query<{ c: string | number }>(sql))[0]!.c);
  const history = async (version: string) =>
    (await db.query<{ status: string; reached: string | null; error: string | null; backfill_cursor: string | null }>(
      `SELECT status, reached, error, backfill_cursor FROM shadowshift_migrations WHERE version = '${version}'`,
    ))[0]!;

  it('pauses on --max-load before the first batch and resumes when the threshold is raised', async () => {
    await table('load_items');
    const dir = tempDir();
    dirs.push(dir);
    write(dir, '100_fill_load.sql', 'ALTER TABLE load_items ADD COLUMN w BIGINT NULL;\n-- shadowshift:backfill\nUPDATE load_items SET w = id WHERE w IS NULL;\n');
    const logs: Array<Record<string, unknown>> = [];
    const progress: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
    // Always crossed: the probe's own connection counts.
    const runner = await MigrationRunner.open({
      connection: parseConnectionUrl(url),
      dir,
      log,
      backfillBatch: 500,
      engine: { throttle: { maxLoad: new Map([[loadName, 1]]) } },
      onProgress: (line) => progress.push(line),
    });
    try {
      const up = runner.up({ execute: true });
      up.catch(() => undefined);
      await waitUntil(() => progress.some((l) => /backfill of \S*load_items paused: max-load: /.test(l)), 'the backfill to pause', 30_000);
      expect(await count("SELECT COUNT(*) AS c FROM load_items WHERE w IS NOT NULL")).toBe(0);
      expect(await history('100')).toMatchObject({ status: 'running', reached: 'expanded', backfill_cursor: null });
      // Rows affected stay flat while paused.
      await new Promise((r) => setTimeout(r, 1500));
      expect(await count("SELECT COUNT(*) AS c FROM load_items WHERE w IS NOT NULL")).toBe(0);
      const started = logs.find((l) => l.msg === 'throttling: max-load');
      expect(started).toMatchObject({ signal: 'max-load', backfill: expect.stringMatching(/load_items$/) });
      expect(String(started!.reason)).toMatch(new RegExp(`^${loadName}=\\d+ >= 1$`));

      runner.throttleSettings.maxLoad.set(loadName, 1_000_000);
      const report = await up;
      expect(report.ran[0]!.statements.find((s) => s.phase === 'backfill')!.ran).toMatch(new RegExp(`^\\d+ batch\\(es\\), ${ROWS} row\\(s\\)$`));
      expect(progress.some((l) => /backfill of \S*load_items resumed after [\d.]+s/.test(l))).toBe(true);
      expect(logs.some((l) => l.msg === 'throttle released' && l.signal === 'max-load')).toBe(true);
    } finally {
      await runner.close();
    }
    expect(await count('SELECT COUNT(*) AS c FROM load_items WHERE w = id')).toBe(ROWS);
    expect(await history('100')).toMatchObject({ status: 'ok', reached: 'backfilled' });
  });

  it('--critical-load stops the backfill after its batch with the cursor saved; the next run resumes there', async () => {
    await table('crit_items');
    const dir = tempDir();
    dirs.push(dir);
    write(dir, '200_add_v.sql', 'ALTER TABLE crit_items ADD COLUMN w BIGINT NULL;\n');
    const expand = await cli(['migrate', 'up', '--execute', '--dir', dir], { SHADOWSHIFT_URL: url });
    expect(expand.code, expand.stderr).toBe(0);
    // No WHERE: a run that started over would count rows twice.
    write(dir, '201_fill_v.sql', '-- shadowshift:backfill\nUPDATE crit_items SET w = id, n = n + 1;\n');

    // A lock on row 2600 holds the batch (2500, 3000] until critical load has struck twice,
    // so the run cannot finish before the stop (the batches before it take a few ms).
    const holder = await openDb(url);
    await holder.exec('BEGIN');
    await holder.query('SELECT id FROM crit_items WHERE id = 2600 FOR UPDATE');
    const run = startCli(['migrate', 'up', '--execute', '--dir', dir, '--backfill-batch', '500', '--critical-load', `${loadName}=1`], { SHADOWSHIFT_URL: url });
    try {
      await stderrShows(run, /"strikes":2,"msg":"critical load crossed"/);
    } finally {
      await holder.exec('ROLLBACK');
      await holder.close();
    }
    const r = await run.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(
      new RegExp(
        `201_fill_v\\.sql: backfill failed at statement 1 \\(line 2\\): --critical-load: critical load twice in a row: ${loadName}=\\d+ >= 1; ` +
          'the backfill stopped after its last committed batch and resumes there',
      ),
    );
    const h = await history('201');
    expect(h.status).toBe('failed');
    expect(h.error).toMatch(/critical load twice in a row/);
    const cursor = Number(JSON.parse(h.backfill_cursor!).s0[0]);
    expect(cursor % 500).toBe(0);
    expect(cursor).toBeGreaterThanOrEqual(500);
    expect(cursor).toBeLessThanOrEqual(3000);
    // Exactly the batches up to the cursor ran.
    expect(await count('SELECT COUNT(*) AS c FROM crit_items WHERE w IS NOT NULL')).toBe(cursor);
    expect(await count(`SELECT COUNT(*) AS c FROM crit_items WHERE id <= ${cursor} AND w = id AND n = 1`)).toBe(cursor);

    const again = await cli(['migrate', 'up', '--execute', '--json', '--dir', dir, '--backfill-batch', '500'], { SHADOWSHIFT_URL: url });
    expect(again.code, again.stderr).toBe(0);
    expect(json(again).ran[0].statements[0].ran).toMatch(/\(resumed\)/);
    // Every row updated exactly once across the two runs.
    expect(await count('SELECT COUNT(*) AS c FROM crit_items WHERE w = id AND n = 1')).toBe(ROWS);
    expect(await history('201')).toMatchObject({ status: 'ok', reached: 'backfilled' });
  });

  it('the engine job of an online migration gets the throttle flags: --critical-load aborts it', async () => {
    await table('eng_items');
    await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE eng_items' : 'ANALYZE eng_items');
    const dir = tempDir();
    dirs.push(dir);
    write(dir, '300_widen_n.sql', dialect === 'mysql' ? 'ALTER TABLE eng_items MODIFY n BIGINT NOT NULL DEFAULT 0;\n' : 'ALTER TABLE eng_items ALTER COLUMN n TYPE bigint;\n');
    // The flag file holds the copy, so the job cannot finish before critical load strikes twice.
    const flag = join(dir, 'hold');
    writeFileSync(flag, '');
    const r = await cli(
      ['migrate', 'up', '--execute', '--dir', dir, '--online-threshold', '1000', '--throttle-flag-file', flag, '--critical-load', `${loadName}=1`],
      { SHADOWSHIFT_URL: url },
    );
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/300_widen_n\.sql: expand failed at statement 1 \(line 1\): job aborted: critical load twice in a row/);
    expect((await columnInfo(db, 'eng_items', 'n'))!.type).toMatch(/^int/);
    expect(await history('300')).toMatchObject({ status: 'failed' });
  });
});

// Once, not per dialect: the flag is parsed before any connection, the same for both
// dialects (the MySQL URL is never reached).
describe('backfill throttle flags', () => {
  it('refuses a malformed threshold as bad input before connecting', async () => {
    const dir = tempDir();
    try {
      const r = await cli(['migrate', 'up', '--execute', '--dir', dir, '--max-load', 'Threads_running'], { SHADOWSHIFT_URL: 'mysql://nobody@127.0.0.1:1/none' });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--max-load: "Threads_running" is not NAME=NUMBER/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
