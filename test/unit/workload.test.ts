// The test support must itself be right: the model must equal the table after
// a workload with no migration (else every acceptance test built on it proves
// nothing), and the comparisons must be able to fail.

import { describe, it, expect, beforeAll } from 'vitest';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, quoteIdent, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, seedRow, startWorkload, WorkloadModel, type WorkloadStats } from '../support/workload/index.js';
import { compareTables, compareWithModel, formatDiffs } from '../support/compare.js';
import { SLOW_OP_MS, StatsRecorder } from '../support/workload/stats.js';

const SEED_ROWS = 20_000;

function expectCleanRun(stats: WorkloadStats): void {
  const detail = JSON.stringify({ errorsByKey: stats.errorsByKey, errorSamples: stats.errorSamples.slice(0, 3), anomalies: stats.anomalySamples.slice(0, 3), reads: stats.readMismatchSamples.slice(0, 3) });
  expect(stats.errors, detail).toBe(0);
  expect(stats.anomalies, detail).toBe(0);
  expect(stats.readMismatches, detail).toBe(0);
}

describe.each([
  ['mysql', () => createMysqlDatabase('wl')],
  ['postgres', () => createPgDatabase('wl')],
] as const)('%s workload support', (dialect, createDb) => {
  let url: string;
  let db: Db;
  const q = (name: string) => quoteIdent(dialect, name);

  beforeAll(async () => {
    url = (await createDb()).url;
    db = await openDb(url);
    return () => db.close();
  });

  it('seeds rows that equal the model computed in JS', async () => {
    await createWorkloadTable(db, 'seeded');
    const model = await seedWorkloadTable(db, 'seeded', SEED_ROWS, { chunkRows: 7_000 });
    const [row] = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${q('seeded')}`);
    expect(String(row!.n)).toBe(String(SEED_ROWS));
    const result = await compareWithModel(db, 'seeded', model);
    expect(result.equal, formatDiffs(result)).toBe(true);
    expect(result.tableRows).toBe(SEED_ROWS);
    // Spot-check the shapes the model promises.
    expect(seedRow(10).note).toBeNull();
    expect(seedRow(1).created_at).toBe('2024-01-01 00:00:01.007919');
    expect(seedRow(1).payload).toHaveLength(400);
  });

  it('keeps a model equal to the table after a few seconds of open-loop load, with a pause', async () => {
    await createWorkloadTable(db, 'orders');
    const model = await seedWorkloadTable(db, 'orders', SEED_ROWS);
    // A small pool of ids makes PK changes and re-inserts of deleted ids collide often.
    const w = await startWorkload({ url, table: 'orders', model, rate: 300, connections: 8, pkChangeShare: 0.2, reuseShare: 0.5, seed: 42 });
    await new Promise((r) => setTimeout(r, 1500));
    await w.pause();
    expect(w.isPaused).toBe(true);
    const opsAtPause = w.stats().ops;
    await new Promise((r) => setTimeout(r, 300));
    expect(w.stats().ops).toBe(opsAtPause); // nothing starts while paused
    // While paused the table is quiet: the model must already be exact.
    const mid = await compareWithModel(db, 'orders', model);
    expect(mid.equal, formatDiffs(mid)).toBe(true);
    w.resume();
    await new Promise((r) => setTimeout(r, 1500));
    const stats = await w.stop();

    expectCleanRun(stats);
    // Loose bounds: the suite shares two cores with other test files.
    expect(stats.ops).toBeGreaterThan(500);
    expect(stats.durationMs).toBeGreaterThan(2800);
    expect(stats.durationMs).toBeLessThan(4500); // the pause does not count
    expect(stats.opsByKind['update-pk']).toBeGreaterThan(5);
    expect(stats.opsByKind.delete).toBeGreaterThan(20);
    expect(stats.opsByKind.insert).toBeGreaterThan(100);
    expect(stats.writesPerSec).toBeGreaterThan(100);
    expect(stats.latency.p50).toBeGreaterThan(0);
    expect(stats.latency.p99).toBeGreaterThanOrEqual(stats.latency.p50);
    expect(stats.longestWriteStallMs).toBeGreaterThan(0);
    expect(stats.unknownOutcomes).toBe(0);

    const result = await compareWithModel(db, 'orders', model);
    expect(result.equal, formatDiffs(result)).toBe(true);
    expect(result.tableRows).toBe(result.expectedRows);
    expect(result.unknownIds).toBe(0);
  });

  it('follows a rename swap, addressing the table by name', async () => {
    await createWorkloadTable(db, 'swap');
    const model = await seedWorkloadTable(db, 'swap', 2_000);
    const w = await startWorkload({ url, table: 'swap', model, rate: 200, connections: 4, seed: 7 });
    await new Promise((r) => setTimeout(r, 500));
    await w.pause();
    await createWorkloadTable(db, 'swap_new');
    await db.exec(`INSERT INTO ${q('swap_new')} SELECT * FROM ${q('swap')}`);
    if (dialect === 'mysql') await db.exec('RENAME TABLE `swap` TO `swap_old`, `swap_new` TO `swap`');
    else {
      await db.exec('BEGIN');
      await db.exec('ALTER TABLE "swap" RENAME TO "swap_old"');
      await db.exec('ALTER TABLE "swap_new" RENAME TO "swap"');
      await db.exec('COMMIT');
    }
    w.resume();
    await new Promise((r) => setTimeout(r, 500));
    const stats = await w.stop();
    expectCleanRun(stats);
    expect((await compareWithModel(db, 'swap', model)).equal).toBe(true);
    // The writes after the swap went to the new table only.
    const old = await compareTables(db, 'swap', 'swap_old');
    expect(old.equal).toBe(false);
  });

  it('records timed-out writes as unknown outcomes, and the table still matches one of their candidates', async () => {
    await createWorkloadTable(db, 'blocked');
    const model = await seedWorkloadTable(db, 'blocked', 2_000);
    const locker = await openDb(url);
    try {
      const w = await startWorkload({ url, table: 'blocked', model, rate: 100, connections: 4, opTimeoutMs: 300, seed: 3 });
      await new Promise((r) => setTimeout(r, 300));
      // Block the table for longer than the client timeout: statements queue on
      // the lock, the workload gives up on them and drops their connections,
      // and the server may still run them once the lock goes.
      if (dialect === 'mysql') await locker.exec('LOCK TABLES `blocked` WRITE');
      else {
        await locker.exec('BEGIN');
        await locker.exec('LOCK TABLE "blocked" IN ACCESS EXCLUSIVE MODE');
      }
      await new Promise((r) => setTimeout(r, 1000));
      await locker.exec(dialect === 'mysql' ? 'UNLOCK TABLES' : 'COMMIT');
      await new Promise((r) => setTimeout(r, 700));
      const stats = await w.stop();
      expect(stats.errorsByKey.TIMEOUT ?? 0).toBeGreaterThan(0);
      expect(stats.unknownOutcomes).toBeGreaterThan(0);
      expect(stats.errorSamples[0]).toMatchObject({ key: 'TIMEOUT', definite: false });
      expect(stats.anomalies).toBe(0);
      expect(stats.readMismatches).toBe(0);
      expect(stats.longestWriteStallMs).toBeGreaterThan(900);
      expect(model.unknownIds().length).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 300)); // let abandoned statements finish on the server
      const result = await compareWithModel(db, 'blocked', model);
      expect(result.equal, formatDiffs(result)).toBe(true);
      expect(result.unknownIds).toBe(model.unknownIds().length);
    } finally {
      await locker.close();
    }
  });

  it('counts server errors as definite failures by code, leaving the model unchanged', async () => {
    await createWorkloadTable(db, 'vanishing');
    const model = await seedWorkloadTable(db, 'vanishing', 500);
    const w = await startWorkload({ url, table: 'vanishing', model, rate: 200, connections: 2, seed: 5 });
    await new Promise((r) => setTimeout(r, 300));
    await db.exec(`ALTER TABLE ${q('vanishing')} RENAME TO ${q('vanished')}`);
    await new Promise((r) => setTimeout(r, 300));
    await db.exec(`ALTER TABLE ${q('vanished')} RENAME TO ${q('vanishing')}`);
    await new Promise((r) => setTimeout(r, 300));
    const stats = await w.stop();
    const missingTable = dialect === 'mysql' ? '1146' : '42P01';
    expect(stats.errorsByKey[missingTable] ?? 0).toBeGreaterThan(10);
    expect(stats.errors).toBe(stats.errorsByKey[missingTable]);
    expect(stats.unknownOutcomes).toBe(0);
    expect(stats.errorSamples[0]).toMatchObject({ key: missingTable, definite: true });
    const result = await compareWithModel(db, 'vanishing', model);
    expect(result.equal, formatDiffs(result)).toBe(true);
  });

  it('detects altered, missing and extra rows against the model', async () => {
    await createWorkloadTable(db, 'tampered');
    const model = await seedWorkloadTable(db, 'tampered', 1_000);
    // amount off by one cent; one payload byte; a datetime off by one microsecond; a NULL note set to ''
    await db.exec(`UPDATE ${q('tampered')} SET amount = amount + 0.01 WHERE id = 17`);
    if (dialect === 'mysql') {
      await db.exec("UPDATE `tampered` SET payload = CONCAT(LEFT(payload, 199), 'x') WHERE id = 18");
      await db.exec('UPDATE `tampered` SET created_at = created_at + INTERVAL 1 MICROSECOND WHERE id = 19');
    } else {
      await db.exec(`UPDATE "tampered" SET payload = substring(payload from 1 for 199) || '\\x78'::bytea WHERE id = 18`);
      await db.exec(`UPDATE "tampered" SET created_at = created_at + interval '1 microsecond' WHERE id = 19`);
    }
    await db.exec(`UPDATE ${q('tampered')} SET note = '' WHERE id = 20`);
    await db.exec(`DELETE FROM ${q('tampered')} WHERE id = 500`);
    await db.exec(`INSERT INTO ${q('tampered')} SELECT id + 5000, user_id, amount, status, note, created_at, payload FROM ${q('tampered')} WHERE id = 1`);

    const result = await compareWithModel(db, 'tampered', model);
    expect(result.equal).toBe(false);
    expect(result.diffCount).toBe(6);
    const seen = result.diffs.map((d) => `${d.key}:${d.kind}:${d.column ?? ''}`);
    expect(seen).toEqual(['17:value:amount', '18:value:payload', '19:value:created_at', '20:value:note', '500:missing:', '5001:extra:']);
    expect(result.diffs[0]).toMatchObject({ expected: seedRow(17).amount });
    expect(result.diffs[3]).toMatchObject({ expected: null, actual: '' });

    // An unknown outcome accepts either candidate, and only those.
    const m2 = new WorkloadModel(1_000);
    m2.setUnknown(500, [seedRow(500), null]); // deleted or not: both fine
    m2.setUnknown(5001, [null]); // must not exist
    const r2 = await compareWithModel(db, 'tampered', m2, { columns: ['user_id', 'status'] });
    expect(r2.diffs.map((d) => `${d.key}:${d.kind}`)).toEqual(['5001:extra']);
  });

  it('compares two tables exactly over their shared columns', async () => {
    await createWorkloadTable(db, 'orig');
    await seedWorkloadTable(db, 'orig', 12_345);
    await createWorkloadTable(db, 'shadow');
    await db.exec(`ALTER TABLE ${q('shadow')} ADD COLUMN extra integer NOT NULL DEFAULT 7`);
    await db.exec(`INSERT INTO ${q('shadow')} (id, user_id, amount, status, note, created_at, payload) SELECT id, user_id, amount, status, note, created_at, payload FROM ${q('orig')}`);

    const same = await compareTables(db, 'orig', 'shadow', { batchSize: 1000 });
    expect(same.equal, formatDiffs(same)).toBe(true);
    expect(same.rowsA).toBe(12_345);
    expect(same.rowsB).toBe(12_345);
    expect(same.onlyInB).toEqual(['extra']);
    expect(same.keyColumns).toEqual(['id']);

    await db.exec(`UPDATE ${q('shadow')} SET amount = amount - 0.01 WHERE id = 3000`);
    await db.exec(`DELETE FROM ${q('shadow')} WHERE id = 4000`);
    await db.exec(`UPDATE ${q('shadow')} SET id = 99999 WHERE id = 12345`); // last row moved past A's end
    const diff = await compareTables(db, 'orig', 'shadow', { batchSize: 1000, limit: 2 });
    expect(diff.equal).toBe(false);
    expect(diff.diffCount).toBe(4);
    expect(diff.diffs).toHaveLength(2);
    expect(diff.diffs[0]).toMatchObject({ key: '["3000"]', kind: 'value', column: 'amount' });
    expect(diff.diffs[1]).toMatchObject({ key: '["4000"]', kind: 'missing' });
    const all = await compareTables(db, 'orig', 'shadow', { batchSize: 1000 });
    expect(all.diffs.map((d) => `${d.key}:${d.kind}`)).toEqual(['["3000"]:value', '["4000"]:missing', '["12345"]:missing', '["99999"]:extra']);
  });
});

describe('workload stats', () => {
  it('keeps each operation of SLOW_OP_MS or more with when it was scheduled, so a benchmark can place it in a phase', () => {
    const rec = new StatsRecorder(3);
    rec.start(1000);
    rec.succeeded(true, SLOW_OP_MS - 1, 1010);
    rec.succeeded(false, SLOW_OP_MS, 1020);
    rec.succeeded(true, 250, 1030);
    const stats = rec.snapshot(1000, 300, 0);
    expect(stats.slowOps).toEqual([
      { at: 1020, ms: SLOW_OP_MS },
      { at: 1030, ms: 250 },
    ]);
    expect(stats.latency.count).toBe(3);
  });
});
