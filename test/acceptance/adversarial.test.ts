// An online ALTER under the adversarial workload (test/support/adversarial), on
// both dialects. The table has a composite key whose values differ only by case,
// normal form, 4-byte characters or trailing spaces, ~50 KB values, and NULLs
// and edge values in many types; the workload runs multi-row transactions with
// key changes, rollbacks and lost COMMIT acknowledgements. The model of every
// acknowledged transaction is the oracle: the checksum is off in the main run
// (and must repair nothing in the second), and the table is compared with the
// model column by column while the cut-over is postponed (original and shadow)
// and after the cut-over, which happens while the workload writes.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, ph, quoteIdent, type Db } from '../support/db.js';
import { mulberry32 } from '../support/workload/index.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';
import type { AlterJob } from '../../src/engine/job.js';
import { alterSql, createTableSql, pkChangeAlter, prepareSession, serverFlavor } from '../support/adversarial/schema.js';
import { RowFactory, seedTable, Statements } from '../support/adversarial/rows.js';
import { startAdvWorkload, type AdvStats, type AdvWorkload } from '../support/adversarial/workload.js';
import { compareWithAdvModel, formatAdvDiffs } from '../support/adversarial/compare.js';
import { RECIPE_WEIGHTS } from '../support/adversarial/recipes.js';

const TABLE = 'adv';
const TENANTS = 6;

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('adv') },
  // The workload found PostgreSQL bugs in key changes with unchanged TOAST values: lost
  // old keys and swaps when coalescing, and (issue 10, about one run in six) a move that
  // took those values from a row the copy or the applier's own read had put under the old
  // key after another row moved in. Each is pinned by test/postgres/partial-key-move.test.ts,
  // applier-moves.test.ts or test/unit/pg-coalesce.test.ts.
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('adv') },
];

/** Errors a multi-row transaction may meet while a chunk holds share locks on its rows; the model knows they rolled back. */
const LOCK_CONFLICTS = new Set(['1213', '40P01']);

interface Scenario {
  families: number;
  rate: number;
  checksum: boolean;
  seed: number;
  /** Rows a chunk copies, and transactions acknowledged between two chunks: the copy overlaps the workload however fast the machine is. */
  chunkSize: number;
  txPerChunk: number;
}

async function until(workload: AdvWorkload, more: number, what: string): Promise<void> {
  const target = workload.committedTotal + more;
  await waitUntil(() => workload.committedTotal >= target, `${more} more acknowledged transactions (${what})`, 60_000, 20);
}

async function hasRow(db: Db, table: string, key: { tenant: string; k: string }): Promise<boolean> {
  const q = (n: string) => quoteIdent(db.dialect, n);
  const rows = await db.query(`SELECT 1 AS x FROM ${q(table)} WHERE ${q('tenant_id')} = ${ph(db.dialect, 1)} AND ${q('k')} = ${ph(db.dialect, 2)}`, [Number(key.tenant), key.k]);
  return rows.length > 0;
}

const delta = (a: AdvStats, b: AdvStats) => Object.fromEntries(Object.keys(b.committed).map((r) => [r, b.committed[r]! - (a.committed[r] ?? 0)]));

async function runScenario(url: string, s: Scenario): Promise<{ stats: AdvStats; logLines: string[]; repairedChunks: number }> {
  const db = await openDb(url);
  const dir = mkdtempSync(join(tmpdir(), 'ss-adv-'));
  const flag = join(dir, 'postpone');
  writeFileSync(flag, '');
  const logLines: string[] = [];
  // Kept to read the checksum's outcome; SHADOWSHIFT_TEST_LOG also shows it on stderr.
  const log = pino({ level: process.env.SHADOWSHIFT_TEST_LOG ?? 'info' }, {
    write: (line: string) => {
      logLines.push(line);
      if (process.env.SHADOWSHIFT_TEST_LOG) process.stderr.write(line);
    },
  });
  try {
    await prepareSession(db);
    const flavor = await serverFlavor(db);
    for (const sql of createTableSql(db.dialect, flavor, TABLE)) await db.exec(sql);
    const factory = new RowFactory(db.dialect, flavor, mulberry32(s.seed), 1);
    const model = await seedTable(db, factory, new Statements(db.dialect, TABLE, factory.columns), { tenants: TENANTS, families: s.families, pBig: 0.012 });
    const workload = await startAdvWorkload({
      url, table: TABLE, model, flavor, tenants: TENANTS, seededFamilies: s.families, nextSid: factory.sidCounter, rate: s.rate, connections: 6, seed: s.seed + 1,
      traceFile: process.env.SHADOWSHIFT_ADV_TRACE,
    });
    await until(workload, 50, 'warm-up');
    // Each chunk throttles the copy (the stream is still applied) until the workload has
    // acknowledged txPerChunk more transactions; the hook returns at once, so the chunk's
    // share locks are not held longer than usual.
    const job: AlterJob = newJob(url, TABLE, alterSql(db.dialect, TABLE), {
      postponeCutoverFlagFile: flag,
      chunkSize: s.chunkSize,
      checksum: s.checksum,
      log,
      testHooks: {
        beforeChunkCommit: async () => {
          job.controls.manualThrottle = true;
          await job.refreshThrottle();
        },
      },
    });
    let copying = true;
    const pacer = (async () => {
      while (copying) {
        await waitUntil(() => !copying || job.controls.manualThrottle, 'a chunk', 300_000, 10);
        if (!copying) break;
        const target = workload.committedTotal + s.txPerChunk;
        await waitUntil(() => workload.committedTotal >= target, 'transactions between chunks', 60_000, 10);
        job.controls.manualThrottle = false;
        await job.refreshThrottle();
      }
    })();
    pacer.catch(() => undefined);
    let running: Promise<unknown> | null = null;
    let repairedChunks = -1;
    try {
      const report = await job.prepare();
      expect(report.ok, JSON.stringify(report.checks.filter((c) => !c.ok))).toBe(true);
      expect(report.key?.map((k) => k.source)).toEqual(['tenant_id', 'k']);
      running = job.execute(report);
      running.catch(() => undefined);
      const atStart = workload.stats();
      await waitUntil(() => ['postponed', 'failed', 'aborted'].includes(job.status().state), 'the copy to finish', 120_000, 50).catch((e: Error) => {
        throw new Error(`${e.message}; job status ${JSON.stringify(job.status())}`);
      });
      copying = false;
      await pacer;
      job.controls.manualThrottle = false;
      await job.refreshThrottle();
      expect(job.status().error).toBeNull();
      const atCopied = workload.stats();
      const duringCopy = delta(atStart, atCopied);
      console.log(`[${db.dialect}] during the copy (${((atCopied.durationMs - atStart.durationMs) / 1000).toFixed(1)} s): ${JSON.stringify(duringCopy)}`);
      expect(Object.values(duringCopy).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(s.txPerChunk * 5);

      // Postponed, writes paused: once a row written last is in the shadow, the
      // original and the shadow must both equal the model (the first checks the
      // model itself, the second the engine).
      await workload.pause();
      const sentinel = await workload.sentinel();
      const shadow = job.status().shadowTable!;
      await waitUntil(() => hasRow(db, shadow, sentinel), 'the last write to reach the shadow', 60_000, 50);
      const original = await compareWithAdvModel(url, TABLE, model);
      expect(original.equal, 'original vs model: ' + formatAdvDiffs(original)).toBe(true);
      const whilePostponed = await compareWithAdvModel(url, shadow, model);
      expect(whilePostponed.equal, 'shadow vs model: ' + formatAdvDiffs(whilePostponed)).toBe(true);
      workload.resume();

      await until(workload, 100, 'writes before the cut-over');
      const atCutover = workload.stats();
      rmSync(flag);
      await running;
      repairedChunks = job.status().repairedChunks;
      const atDone = workload.stats();
      console.log(`[${db.dialect}] around the cut-over (${((atDone.durationMs - atCutover.durationMs) / 1000).toFixed(1)} s): ${atDone.started - atCutover.started} transactions started`);
      await until(workload, 100, 'writes after the cut-over');
    } finally {
      copying = false;
      // A failed assertion leaves the job running (postponed): stop it and let it clean up before its pool closes.
      if (running) {
        job.controls.abort('the test ended');
        await running.catch(() => undefined);
      }
      await job.close();
    }
    const stats = await workload.stop();
    const final = await compareWithAdvModel(url, TABLE, model);
    console.log(
      `[${db.dialect}] ${final.tableRows} rows; ${stats.started} transactions in ${(stats.durationMs / 1000).toFixed(1)} s, p99 ${stats.latency.p99.toFixed(0)} ms, ` +
        `max ${stats.latency.max.toFixed(0)} ms; committed ${JSON.stringify(stats.committed)}; steps ${JSON.stringify(stats.committedSteps)}; ` +
        `rolled back ${stats.rolledBack}, expected errors ${stats.expectedErrors}, unknown ${stats.unknownOutcomes} (${final.unknownCommitted} committed), errors ${JSON.stringify(stats.errorsByKey)}`,
    );
    expect(final.equal, 'final table vs model: ' + formatAdvDiffs(final)).toBe(true);
    const unplanned = Object.keys(stats.errorsByKey).filter((k) => !LOCK_CONFLICTS.has(k));
    expect(unplanned, JSON.stringify(stats.errorSamples.slice(0, 5))).toEqual([]);
    expect(stats.errors, 'lock conflicts').toBeLessThanOrEqual(stats.started * 0.01);
    expect(stats.anomalies, stats.anomalySamples.join('\n')).toBe(0);
    expect(stats.readMismatches, stats.readMismatchSamples.join('\n')).toBe(0);
    if (db.dialect === 'mysql') {
      const pk = await db.query<{ c: string }>(`SELECT COLUMN_NAME AS c FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'`, [TABLE]);
      expect(pk.map((r) => r.c)).toEqual(['sid']);
    }
    const [t] = await db.query<{ t: string }>(
      db.dialect === 'mysql'
        ? `SELECT DATA_TYPE AS t FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${TABLE}' AND COLUMN_NAME = 'i32'`
        : `SELECT format_type(atttypid, NULL) AS t FROM pg_attribute WHERE attrelid = '${TABLE}'::regclass AND attname = 'i32'`,
    );
    expect(String(t!.t)).toBe('bigint');
    return { stats, logLines, repairedChunks };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every kind of transaction and statement the workload is built to produce actually committed (or ended as planned). */
function expectEveryKind(stats: AdvStats): void {
  for (const recipe of Object.keys(RECIPE_WEIGHTS)) {
    if (['rollback', 'dup-insert', 'abandon'].includes(recipe)) continue;
    expect(stats.committed[recipe], `committed ${recipe} transactions`).toBeGreaterThan(0);
  }
  for (const kind of ['insert', 'update-small', 'update-small-toast', 'update-big', 'move', 'move-big', 'sid', 'delete', 'select']) {
    expect(stats.committedSteps[kind] ?? 0, `committed ${kind} statements`).toBeGreaterThan(0);
  }
  expect(stats.rolledBack).toBeGreaterThan(0);
  expect(stats.expectedErrors).toBeGreaterThan(0);
  expect(stats.unknownOutcomes).toBeGreaterThan(0);
}

describe.each(testedDialects(cases))('$dialect: online ALTER under the adversarial workload', ({ createDb }) => {
  it('ends equal to the model of every acknowledged transaction (checksum off)', async () => {
    const { url } = await createDb();
    const { stats } = await runScenario(url, { families: 4000, rate: 60, checksum: false, seed: 9, chunkSize: 1000, txPerChunk: 10 });
    expectEveryKind(stats);
  }, 300_000);

  it('with the checksum on, repairs nothing and ends equal to the model', async () => {
    const { url } = await createDb();
    const { logLines, repairedChunks } = await runScenario(url, { families: 1000, rate: 60, checksum: true, seed: 19, chunkSize: 400, txPerChunk: 6 });
    expect(logLines.filter((l) => (JSON.parse(l) as { msg: string }).msg.startsWith('checksum: original and shadow match')).length).toBeGreaterThan(0);
    expect(repairedChunks).toBe(0);
  }, 300_000);
});

describe('postgres: an ALTER that moves the primary key', () => {
  // Engine bug: the shadow is created with LIKE ... INCLUDING ALL, which gives its
  // constraints new names (<shadow>_pkey, <shadow>_sid_key), so an ALTER naming the
  // original's constraints (DROP CONSTRAINT adv_pkey) is refused at preview with
  // "constraint "adv_pkey" of relation "_ss_preview_…" does not exist". No ALTER can
  // change a PostgreSQL table's primary key online.
  it.fails('moves the primary key to the surrogate column', async () => {
    const { url } = await createPgDatabase('advpk');
    const db = await openDb(url);
    try {
      for (const sql of createTableSql('postgres', 'postgres', TABLE)) await db.exec(sql);
      const factory = new RowFactory('postgres', 'postgres', mulberry32(3), 1);
      await seedTable(db, factory, new Statements('postgres', TABLE, factory.columns), { tenants: TENANTS, families: 50, pBig: 0 });
      await runAlter(url, TABLE, pkChangeAlter(TABLE));
      const pk = await db.query<{ a: string }>(`SELECT a.attname AS a FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) WHERE i.indrelid = '${TABLE}'::regclass AND i.indisprimary`);
      expect(pk.map((r) => r.a)).toEqual(['sid']);
    } finally {
      await db.close();
    }
  });
});
