// Backfill phases: key-range batches, resumable from the last batch after a
// failure, paused by the throttle; and which edits a failed migration accepts.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../support/db.js';
import { cli, json, newDatabase, startCli, stderrShows, tempDir, write } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

const ROWS = 5000;

describe.each(['mysql', 'postgres'] as const)('backfill on %s', (dialect) => {
  let url: string;
  let db: Db;
  let dir: string;
  const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--backfill-batch', '1000'], { SHADOWSHIFT_URL: url });

  beforeAll(async () => {
    ({ url, db } = await newDatabase(dialect, 'mbf'));
    dir = tempDir();
    await db.exec('CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, n INT NOT NULL DEFAULT 0, bad INT NULL)');
    await db.exec(
      dialect === 'mysql' ? `INSERT INTO items (id) SELECT seq FROM ${mysqlSeq(1, ROWS)}` : `INSERT INTO items (id) SELECT g FROM generate_series(1, ${ROWS}) g`,
    );
    await db.exec('UPDATE items SET bad = 1 WHERE id = 3500');
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs in key-range batches, records the failing batch, and resumes after the last good batch', async () => {
    const path = write(
      dir,
      '100_fill_w.sql',
      'ALTER TABLE items ADD COLUMN w BIGINT NULL;\n-- shadowshift:backfill\nUPDATE items SET w = id * 2, n = CASE WHEN bad = 1 THEN NULL ELSE n + 1 END WHERE w IS NULL;\n',
    );
    const plan = json(await migrate('plan', '--json'));
    expect(plan.up[0].phases[1].statements[0].how).toMatch(/key-range batches over \(id\)/);
    const r = await migrate('up', '--execute');
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/100_fill_w\.sql: backfill failed at statement 1 \(line 3\)/);
    // Batches up to id 3000 committed; the one holding 3500 did not.
    const done = await db.query<{ n: string | number }>('SELECT COUNT(*) AS n FROM items WHERE w IS NOT NULL');
    expect(Number(done[0]!.n)).toBe(3000);
    const hist = await db.query<{ backfill_cursor: string; reached: string }>("SELECT backfill_cursor, reached FROM shadowshift_migrations WHERE version = '100'");
    expect(hist[0]!.reached).toBe('expanded');
    expect(JSON.parse(hist[0]!.backfill_cursor).s0.map(String)).toEqual(['3000']);

    // The expand phase completed: editing it is refused; the failed backfill may be fixed.
    const original = 'ALTER TABLE items ADD COLUMN w BIGINT NULL;\n';
    writeFileSync(path, 'ALTER TABLE items ADD COLUMN w INT NULL;\n-- shadowshift:backfill\nUPDATE items SET w = id * 2, n = n + 1 WHERE w IS NULL;\n');
    const refused = await migrate('up', '--execute');
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/100_fill_w\.sql: its expand phase was changed after it completed/);
    writeFileSync(path, original + '-- shadowshift:backfill\nUPDATE items SET w = id * 2, n = n + 1 WHERE w IS NULL;\n');
    const fixed = await migrate('up', '--execute', '--json');
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(json(fixed).ran[0].statements[0].ran).toMatch(/\(resumed\)/);
    // Every row filled exactly once: the first 3000 rows were not updated again.
    const counts = await db.query<{ n: string | number; c: string | number }>('SELECT n, COUNT(*) AS c FROM items GROUP BY n ORDER BY n');
    expect(counts.map((x) => [Number(x.n), Number(x.c)])).toEqual([[1, ROWS]]);
    const wrong = await db.query<{ c: string | number }>('SELECT COUNT(*) AS c FROM items WHERE w IS NULL OR w <> id * 2');
    expect(Number(wrong[0]!.c)).toBe(0);
  });

  it('SIGINT stops at the next batch, records where, and the next run resumes there', async () => {
    const flag = join(dir, 'throttle-int');
    write(dir, '150_fill_y.sql', 'ALTER TABLE items ADD COLUMN y BIGINT NULL;\n-- shadowshift:backfill\nUPDATE items SET y = id WHERE y IS NULL;\n');
    writeFileSync(flag, '');
    const run = startCli(['migrate', 'up', '--execute', '--dir', dir, '--throttle-flag-file', flag, '--backfill-batch', '500'], { SHADOWSHIFT_URL: url });
    await stderrShows(run, /150_fill_y\.sql: backfill/);
    await new Promise((r) => setTimeout(r, 500));
    run.child.kill('SIGINT');
    const r = await run.done;
    rmSync(flag, { force: true });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/SIGINT: stopping after the current statement or batch/);
    expect(r.stderr).toMatch(/150_fill_y\.sql: backfill failed at statement 1 \(line 3\): interrupted by SIGINT/);
    const hist = await db.query<{ status: string; error: string }>("SELECT status, error FROM shadowshift_migrations WHERE version = '150'");
    expect(hist[0]!.status).toBe('failed');
    expect(hist[0]!.error).toMatch(/interrupted by SIGINT/);
    const again = await migrate('up', '--execute');
    expect(again.code, again.stderr).toBe(0);
    const filled = await db.query<{ c: string | number }>('SELECT COUNT(*) AS c FROM items WHERE y = id');
    expect(Number(filled[0]!.c)).toBe(ROWS);
  });

  it('pauses while the throttle flag file exists', async () => {
    const flag = join(dir, 'throttle');
    writeFileSync(flag, '');
    write(dir, '200_fill_z.sql', 'ALTER TABLE items ADD COLUMN z BIGINT NULL;\n-- shadowshift:backfill\nUPDATE items SET z = id WHERE z IS NULL;\n');
    const run = startCli(['migrate', 'up', '--execute', '--dir', dir, '--throttle-flag-file', flag, '--backfill-batch', '500'], { SHADOWSHIFT_URL: url });
    try {
      await stderrShows(run, /200_fill_z\.sql: backfill/);
      await new Promise((r) => setTimeout(r, 1000));
      const cols = await db.query(dialect === 'mysql' ? "SHOW COLUMNS FROM items LIKE 'z'" : "SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'z'");
      expect(cols.length).toBe(1); // expand ran
      const filled = await db.query<{ c: string | number }>('SELECT COUNT(*) AS c FROM items WHERE z IS NOT NULL');
      expect(Number(filled[0]!.c)).toBe(0); // backfill waits
    } finally {
      rmSync(flag, { force: true });
    }
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(flag)).toBe(false);
    const filled = await db.query<{ c: string | number }>('SELECT COUNT(*) AS c FROM items WHERE z = id');
    expect(Number(filled[0]!.c)).toBe(ROWS);
  });
});
