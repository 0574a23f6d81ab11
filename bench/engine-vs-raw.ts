// The engine against the raw chunked INSERT ... SELECT and the peers (bench/lib/peers.ts:
// the server's own ALTER, pt-online-schema-change, pg_repack; gh-ost when installed),
// on the same server and the same 1M-row table as FIELD-NOTES "What the peers do on
// this machine", idle and under the 300 ops/s open-loop workload.
// Over 400 lines on purpose: one interleaved run loop whose steps share its state (server,
// table, model, log files); the parts that stand alone are in bench/lib/.
//
//   npx tsx bench/engine-vs-raw.ts [--dialect mysql|postgres|both] [--rows 1000000] [--runs 1]
//        [--rate 300] [--connections 8] [--chunk-time 200] [--copy-threads 1] [--load-seconds 10]
//        [--steps nomig,raw,raw-nolock,idx,blocking,inplace,ptosc,repack,engine,engine-cli[,engine-cli-loaded,engine-nock,engine-locking,engine-keepidx,engine-nice,engine-nice1,engine-ckpt]]
//        [--json FILE] [--log-dir DIR]
//
// One run, per dialect, in this order (runs repeat it, so peers and engine
// measurements interleave: peers, engine, peers, engine, ...):
//
//   table A (fresh seed): no-migration workload; raw copy idle; raw copy under
//     load; index experiment (idle); under load, each reverted before the next
//     (unmeasured): the blocking ALTER, MariaDB's INPLACE/LOCK=NONE,
//     pt-online-schema-change; PostgreSQL: pg_repack idle, then under load.
//   table B (fresh seed): the engine idle (with its peak RSS and CPU per row).
//   table C (fresh seed): the engine under load.
//   table D (fresh seed): `shadowshift alter` run as a process, idle, under GNU time:
//     its own peak RSS and CPU, without this harness (needs `npm run build`).
//   table E (engine-cli-loaded, fresh seed): that process under load, as the peers run
//     (the in-process engine shares the workload's event loop).
//
// The raw copy goes into a copy table with the same ALTER applied as the
// engine's shadow (bench/lib/baseline-copy.ts: 10k-row PK ranges, one
// autocommit statement each; MySQL INSERT IGNORE ... LOCK IN SHARE MODE, PG
// ON CONFLICT DO NOTHING without row locks; PG also measured with FOR SHARE,
// which is what the engine's copier uses).
//
// The engine runs in-process (AlterJob, the way the CLI runs it) with a
// postpone flag file. Its copy phase is timed from the `copying` state to the
// first `catching-up` (pure copy, events applied between chunks included),
// and to `postponed` (adds catch-up and the pre-cut-over checksum); the flag
// is removed the moment `postponed` is entered, and the total wall time (from
// prepare() to done, the postponed dwell subtracted) is recorded too.
//
// Why it is long (~550 lines): one measured run is the whole procedure (server,
// seed, workload, each step, the summary), kept in one file so it reads top to bottom.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { appendFileSync, mkdirSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { openDb, quoteIdent, withDb, type Db, type Dialect } from '../test/support/db.js';
import { createWorkloadTable, seedWorkloadTable, type WorkloadModel, type WorkloadStats } from '../test/support/workload/index.js';
import { startBenchServers } from './lib/servers.js';
import { baselineCopy, type BaselineCopyResult } from './lib/baseline-copy.js';
import { runWithWorkload, sleep } from './lib/with-workload.js';
import type { ModelCompareResult } from '../test/support/compare.js';
import { formatStats, markdownTable, median, ms } from './lib/report.js';
import { AlterJob } from '../src/engine/job.js';
import { nativeAlter, peerProgram, pgRepack, ptOnlineSchemaChange, revertChange, timedProcess } from './lib/peers.js';
import { parseConnectionUrl } from '../src/util/connection-url.js';

const { values: args } = parseArgs({
  options: {
    dialect: { type: 'string', default: 'both' },
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '1' },
    rate: { type: 'string', default: '300' },
    connections: { type: 'string', default: '8' },
    'chunk-time': { type: 'string', default: '200' },
    'copy-threads': { type: 'string', default: '1' },
    'load-seconds': { type: 'string', default: '10' },
    // Also: engine-nock (checksum off), engine-locking (the copy under row locks) engine-keepidx (--no-defer-indexes), engine-nice and engine-nice1 (--nice-ratio 0.5 and 1) and engine-ckpt (MariaDB: --max-load on the redo checkpoint age), diagnostics.
    steps: { type: 'string', default: 'nomig,raw,idx,blocking,inplace,ptosc,repack,engine,engine-cli' },
    json: { type: 'string' },
    'log-dir': { type: 'string' },
  },
});

const rows = Number(args.rows);
const runs = Number(args.runs);
const rate = Number(args.rate);
const connections = Number(args.connections);
const chunkTimeMs = Number(args['chunk-time']);
const copyThreads = Number(args['copy-threads']);
const loadSeconds = Number(args['load-seconds']);
const steps = new Set(args.steps!.split(',').map((s) => s.trim()));
const dialects: Dialect[] = args.dialect === 'both' ? ['mysql', 'postgres'] : [args.dialect as Dialect];
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const logDir = args['log-dir'] ?? join(tmpdir(), `shadowshift-bench-${stamp}`);
const jsonFile = args.json ?? join(logDir, 'results.json');
mkdirSync(logDir, { recursive: true });

const TABLE = 'orders';
/** Workload warm-up before the measured step (runWithWorkload's default). */
const WARMUP_MS = 1000;
/**
 * The change: FIELD-NOTES' on MariaDB (a NOT NULL column with a default + an index on
 * status). PostgreSQL's ALTER TABLE cannot add a plain index and adds such a column
 * without a rewrite, so there a column plus a type change that rewrites the table and
 * its user_id index (the shape of issue 13's measurements).
 */
const ALTER: Record<Dialect, string> = {
  mysql: `ADD COLUMN flag TINYINT NOT NULL DEFAULT 1, ADD INDEX ${TABLE}_status_idx (status)`,
  postgres: 'ADD COLUMN flag smallint NOT NULL DEFAULT 1, ALTER COLUMN user_id TYPE bigint',
};

// ---------------------------------------------------------------------------
// Records

interface Record_ {
  dialect: Dialect;
  run: number;
  what: string;
  load: 'idle' | 'loaded' | '-';
  rows?: number;
  /** Seconds of the measured phase (copy phase, or whole tool run). */
  seconds?: number;
  rowsPerSec?: number;
  /** fn's wall time under runWithWorkload, or the tool's wall time idle. */
  wallMs?: number;
  stats?: WorkloadStats;
  verifyEqual?: boolean;
  /** When the table differs from the workload's model: counts and the first differences. */
  verifyDiffs?: unknown;
  loadavg: number[];
  extra?: Record<string, unknown>;
}

const records: Record_[] = [];

function save(): void {
  writeFileSync(jsonFile, JSON.stringify({ args, rows, runs, rate, connections, chunkTimeMs, copyThreads, alter: ALTER, records }, null, 2));
}

function diffsOf(v: ModelCompareResult | undefined): unknown {
  if (!v || v.equal) return undefined;
  return { diffCount: v.diffCount, tableRows: v.tableRows, expectedRows: v.expectedRows, unknownIds: v.unknownIds, diffs: v.diffs.slice(0, 5) };
}

function note(r: Record_): void {
  records.push(r);
  save();
  const parts = [`[${r.dialect} run ${r.run}] ${r.what} (${r.load})`];
  if (r.rowsPerSec !== undefined) parts.push(`${Math.round(r.rowsPerSec)} rows/s`);
  if (r.seconds !== undefined) parts.push(`${r.seconds.toFixed(2)} s`);
  if (r.wallMs !== undefined) parts.push(`wall ${ms(r.wallMs)}`);
  if (r.stats) parts.push(formatStats(r.stats));
  if (r.verifyEqual !== undefined) parts.push(`model ${r.verifyEqual ? 'equal' : 'DIFFERS ' + JSON.stringify(r.verifyDiffs)}`);
  if (r.extra) parts.push(JSON.stringify(r.extra));
  parts.push(`loadavg ${r.loadavg.map((x) => x.toFixed(2)).join('/')}`);
  console.error(parts.join('; '));
}

// ---------------------------------------------------------------------------
// Tables

async function freshTable(url: string): Promise<WorkloadModel> {
  await withDb(url, async (db) => {
    await db.exec(`DROP TABLE IF EXISTS ${quoteIdent(db.dialect, TABLE)}`);
  });
  const t0 = performance.now();
  await createWorkloadTable(url, TABLE);
  const model = await seedWorkloadTable(url, TABLE, rows);
  await withDb(url, async (db) => {
    // PG: set hint bits and the visibility map now, so no measurement pays for them.
    if (db.dialect === 'postgres') await db.exec(`VACUUM ANALYZE ${quoteIdent(db.dialect, TABLE)}`);
    else await db.exec(`ANALYZE TABLE ${quoteIdent(db.dialect, TABLE)}`);
  });
  console.error(`  seeded ${rows} rows in ${ms(performance.now() - t0)}`);
  return model;
}

async function dropTables(url: string, ...names: string[]): Promise<void> {
  await withDb(url, async (db) => {
    for (const n of names) await db.exec(`DROP TABLE IF EXISTS ${quoteIdent(db.dialect, n)}`);
  });
}

async function dropLeftovers(url: string): Promise<void> {
  await withDb(url, async (db) => {
    const names =
      db.dialect === 'mysql'
        ? (await db.query<{ n: string }>(`SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()`)).map((r) => r.n)
        : (await db.query<{ n: string }>(`SELECT tablename AS n FROM pg_tables WHERE schemaname = 'public'`)).map((r) => r.n);
    for (const n of names) await db.exec(`DROP TABLE IF EXISTS ${quoteIdent(db.dialect, n)}${db.dialect === 'postgres' ? ' CASCADE' : ''}`);
  });
}

// ---------------------------------------------------------------------------
// Raw copies

async function rawCopy(url: string, dest: string, d: Dialect, lockRows?: boolean): Promise<BaselineCopyResult> {
  await dropTables(url, dest);
  try {
    return await baselineCopy(url, TABLE, dest, { create: true, alter: ALTER[d], lockRows });
  } finally {
    await dropTables(url, dest);
  }
}

/**
 * Copy into a table with the shadow's columns but without secondary indexes,
 * then build them (MySQL: one online ALTER ... ADD INDEX; PG: CREATE INDEX
 * CONCURRENTLY, as the engine's deferred-index code does). `withStatusIndex`
 * adds FIELD-NOTES' status index on PG (MySQL's ALTER already has it).
 */
async function deferredIndexCopy(url: string, d: Dialect, withStatusIndex: boolean): Promise<{ copy: BaselineCopyResult; indexMs: number; withIndexes: BaselineCopyResult }> {
  const dest = `${TABLE}_noidx`;
  const q = (n: string) => quoteIdent(d, n);
  // 1. with the indexes in place (the shape the deferred variant ends up with)
  await dropTables(url, dest);
  let withIndexes: BaselineCopyResult;
  try {
    await withDb(url, async (db) => {
      if (d === 'mysql') {
        await db.exec(`CREATE TABLE ${q(dest)} LIKE ${q(TABLE)}`);
      } else {
        await db.exec(`CREATE TABLE ${q(dest)} (LIKE ${q(TABLE)} INCLUDING ALL)`);
      }
      await db.exec(`ALTER TABLE ${q(dest)} ${ALTER[d]}`);
      if (d === 'postgres' && withStatusIndex) await db.exec(`CREATE INDEX ${q(dest + '_status_idx')} ON ${q(dest)} (status)`);
    });
    withIndexes = await baselineCopy(url, TABLE, dest, { create: false });
  } finally {
    await dropTables(url, dest);
  }
  // 2. without secondary indexes, then build them
  const db = await openDb(url);
  try {
    if (d === 'mysql') {
      await db.exec(`CREATE TABLE ${q(dest)} LIKE ${q(TABLE)}`);
      await db.exec(`ALTER TABLE ${q(dest)} ADD COLUMN flag TINYINT NOT NULL DEFAULT 1, DROP INDEX ${q(TABLE + '_user_id_idx')}`);
    } else {
      await db.exec(`CREATE TABLE ${q(dest)} (LIKE ${q(TABLE)} INCLUDING ALL)`);
      await db.exec(`ALTER TABLE ${q(dest)} ${ALTER[d]}`);
      const idx = await db.query<{ n: string }>(
        `SELECT c.relname AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`,
        [dest],
      );
      for (const r of idx) await db.exec(`DROP INDEX ${q(r.n)}`);
    }
    const copy = await baselineCopy(db, TABLE, dest, { create: false });
    const t0 = performance.now();
    if (d === 'mysql') {
      await db.exec(`ALTER TABLE ${q(dest)} ADD INDEX ${q(TABLE + '_user_id_idx')} (user_id), ADD INDEX ${q(TABLE + '_status_idx')} (status), ALGORITHM=INPLACE, LOCK=NONE`);
    } else {
      await db.exec(`CREATE INDEX CONCURRENTLY ${q(dest + '_user_id_idx')} ON ${q(dest)} (user_id)`);
      if (withStatusIndex) await db.exec(`CREATE INDEX CONCURRENTLY ${q(dest + '_status_idx')} ON ${q(dest)} (status)`);
    }
    const indexMs = performance.now() - t0;
    return { copy, indexMs, withIndexes };
  } finally {
    await db.exec(`DROP TABLE IF EXISTS ${q(dest)}`).catch(() => undefined);
    await db.close();
  }
}

// ---------------------------------------------------------------------------
// The engine

interface EngineRun {
  rowsCopied: number;
  innodb: InnodbPressure | null;
  /** When each phase began (performance.now()). */
  phases: Array<{ phase: string; at: number }>;
  eventsApplied: number;
  cutoverAttempts: number;
  /** copying -> first catching-up */
  copyMs: number;
  /** copying -> postponed (catch-up and checksum included) */
  toPostponedMs: number;
  /** prepare() start -> done, postponed dwell subtracted */
  totalMs: number;
  prepareMs: number;
  /** copying entered, ms after prepare() start */
  copyStartAfterMs: number;
  postponedDwellMs: number;
  /** postponed left -> done (final catch-up + cut-over) */
  cutoverPhaseMs: number;
  cutoverBlockedMs: number | null;
  chunks: number;
  chunkSecondsSum: number;
  chunkRowsMedian: number;
  lastChunkSize: number;
  states: Array<{ state: string; atMs: number; rowsCopied: number }>;
  /** Peak RSS of this process while the job ran (the harness included: an upper bound for the engine idle). */
  peakRssMB: number;
  /** CPU time of this process (user + system) per copied row, µs (the workload's too when loaded). */
  cpuUsPerRow: number;
}

interface EngineVariant {
  checksum?: boolean;
  copyRowLocks?: boolean;
  deferIndexes?: boolean;
  copyNiceRatio?: number;
  /** MariaDB: --max-load Innodb_checkpoint_age at this fraction of Innodb_checkpoint_max_age (read when the run starts). */
  checkpointAgeFraction?: number;
}

/** Log messages that start a phase of the job, to place the application's slow operations in them. */
const PHASE_MARKS: Array<[RegExp, string]> = [
  [/^state: copying$/, 'copy'],
  [/^copy complete/, 'index build'],
  [/^built the new table/, 'catch-up and checksum'],
  [/^state: postponed$/, 'postponed'],
  [/^state: cutting-over$/, 'cut-over'],
  [/^cut-over done$/, 'after'],
];

/** How many of the application's slow operations (scheduled at performance.now() times) fall in each phase. */
function slowOpsByPhase(slowOps: Array<{ at: number }>, phases: Array<{ phase: string; at: number }>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const op of slowOps) {
    const phase = phases.filter((p) => p.at <= op.at).at(-1)?.phase ?? 'before';
    counts[phase] = (counts[phase] ?? 0) + 1;
  }
  return counts;
}

/** InnoDB's redo checkpoint age and the buffer pool's free-page waits, sampled while a MariaDB job runs. */
interface InnodbPressure {
  maxCheckpointAgePct: number;
  bufferPoolWaitFree: number;
}

const innodbStatus = async (db: Db, names: string[]): Promise<Record<string, number>> => {
  const rows = await db.query<{ Variable_name: string; Value: string }>(`SHOW GLOBAL STATUS WHERE Variable_name IN (${names.map(() => '?').join(', ')})`, names);
  return Object.fromEntries(rows.map((r) => [r.Variable_name, Number(r.Value)]));
};

/** Samples every 100 ms until stopped; answers null on PostgreSQL. */
async function sampleInnodb(url: string, d: Dialect): Promise<() => Promise<InnodbPressure | null>> {
  if (d !== 'mysql') return async () => null;
  const db = await openDb(url);
  const names = ['Innodb_checkpoint_age', 'Innodb_checkpoint_max_age', 'Innodb_buffer_pool_wait_free'];
  const start = await innodbStatus(db, names);
  let maxPct = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const v = await innodbStatus(db, names);
      maxPct = Math.max(maxPct, (100 * v.Innodb_checkpoint_age!) / v.Innodb_checkpoint_max_age!);
      await sleep(100);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    const end = await innodbStatus(db, names);
    await db.close();
    return { maxCheckpointAgePct: Math.round(maxPct), bufferPoolWaitFree: end.Innodb_buffer_pool_wait_free! - start.Innodb_buffer_pool_wait_free! };
  };
}

async function runEngine(url: string, d: Dialect, logFile: string, variant: EngineVariant = {}): Promise<EngineRun> {
  const flag = join(tmpdir(), `shadowshift-bench-${randomBytes(4).toString('hex')}.flag`);
  writeFileSync(flag, '');
  const states: Array<{ state: string; atMs: number; rowsCopied: number }> = [];
  const phases: Array<{ phase: string; at: number }> = [];
  const chunks: Array<{ rows: number; seconds: number }> = [];
  let blockedMs: number | null = null;
  let job: AlterJob | null = null;
  const t0 = performance.now();
  const dest = {
    write(line: string) {
      const now = performance.now() - t0;
      appendFileSync(logFile, line);
      try {
        const o = JSON.parse(line) as { to?: string; msg?: string; blockedMs?: number };
        const mark = PHASE_MARKS.find(([re]) => re.test(o.msg ?? ''));
        if (mark && !phases.some((p) => p.phase === mark[1])) phases.push({ phase: mark[1], at: performance.now() });
        if (o.to) {
          states.push({ state: o.to, atMs: now, rowsCopied: job?.status().rowsCopied ?? 0 });
          if (o.to === 'postponed' && existsSync(flag)) unlinkSync(flag);
        }
        if (o.msg === 'cut-over done' && typeof o.blockedMs === 'number') blockedMs = o.blockedMs;
      } catch {
        /* not JSON */
      }
    },
  };
  const log = pino({ level: 'info', base: undefined }, dest);
  const { checkpointAgeFraction, ...jobVariant } = variant;
  let maxLoad: Map<string, number> | undefined;
  if (checkpointAgeFraction !== undefined) {
    const max = await withDb(url, async (db) => (await innodbStatus(db, ['Innodb_checkpoint_max_age'])).Innodb_checkpoint_max_age!);
    maxLoad = new Map([['Innodb_checkpoint_age', Math.round(max * checkpointAgeFraction)]]);
  }
  const pressure = await sampleInnodb(url, d);
  job = new AlterJob({
    connection: parseConnectionUrl(url),
    table: TABLE,
    alter: ALTER[d],
    chunkTimeMs,
    copyThreads,
    cutoverLockTimeoutMs: 3000,
    cutoverRetries: 5,
    dropOldTable: true,
    postponeCutoverFlagFile: flag,
    log,
    observer: { chunkCopied: (r, s) => chunks.push({ rows: r, seconds: s }) },
    ...(maxLoad ? { maxLoad } : {}),
    ...jobVariant,
  });
  const cpu0 = process.cpuUsage();
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
  try {
    const report = await job.prepare();
    const prepareMs = performance.now() - t0;
    if (!report.ok) throw new Error(`preflight failed: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
    const result = await job.execute(report);
    const doneAt = performance.now() - t0;
    const innodb = await pressure();
    const at = (s: string, nth = 1) => states.filter((x) => x.state === s)[nth - 1]?.atMs;
    const copyStart = at('copying');
    const copyEnd = at('catching-up');
    const postponed = at('postponed');
    const postponedLeft = states.find((x) => postponed !== undefined && x.atMs > postponed && x.state !== 'postponed')?.atMs;
    if (copyStart === undefined || copyEnd === undefined) throw new Error(`engine states not seen: ${JSON.stringify(states)}`);
    const dwell = postponed !== undefined && postponedLeft !== undefined ? postponedLeft - postponed : 0;
    return {
      rowsCopied: result.rowsCopied,
      eventsApplied: result.eventsApplied,
      cutoverAttempts: result.cutoverAttempts,
      copyMs: copyEnd - copyStart,
      toPostponedMs: (postponed ?? copyEnd) - copyStart,
      totalMs: doneAt - dwell,
      prepareMs,
      copyStartAfterMs: copyStart,
      postponedDwellMs: dwell,
      cutoverPhaseMs: doneAt - (postponedLeft ?? postponed ?? copyEnd),
      cutoverBlockedMs: blockedMs,
      chunks: chunks.length,
      chunkSecondsSum: chunks.reduce((a, c) => a + c.seconds, 0),
      chunkRowsMedian: median(chunks.map((c) => c.rows)),
      lastChunkSize: job.status().chunkSize,
      states,
      peakRssMB: Math.round(peakRss / 2 ** 20),
      cpuUsPerRow: (() => {
        const c = process.cpuUsage(cpu0);
        return +((c.user + c.system) / Math.max(1, result.rowsCopied)).toFixed(2);
      })(),
      innodb,
      phases,
    };
  } finally {
    clearInterval(sampler);
    if (existsSync(flag)) unlinkSync(flag);
    await job.close();
  }
}

function engineExtra(e: EngineRun): Record<string, unknown> {
  return {
    copyRowsPerSec: Math.round(e.rowsCopied / (e.copyMs / 1000)),
    toPostponedRowsPerSec: Math.round(e.rowsCopied / (e.toPostponedMs / 1000)),
    copyS: +(e.copyMs / 1000).toFixed(2),
    toPostponedS: +(e.toPostponedMs / 1000).toFixed(2),
    totalS: +(e.totalMs / 1000).toFixed(2),
    beforeCopyS: +(e.copyStartAfterMs / 1000).toFixed(2),
    cutoverPhaseS: +(e.cutoverPhaseMs / 1000).toFixed(2),
    cutoverBlockedMs: e.cutoverBlockedMs,
    eventsApplied: e.eventsApplied,
    chunks: e.chunks,
    chunkSecondsSum: +e.chunkSecondsSum.toFixed(2),
    chunkRowsMedian: e.chunkRowsMedian,
    lastChunkSize: e.lastChunkSize,
    cutoverAttempts: e.cutoverAttempts,
    peakRssMB: e.peakRssMB,
    cpuUsPerRow: e.cpuUsPerRow,
    ...(e.innodb ?? {}),
    states: e.states.map((s) => `${s.state}@${(s.atMs / 1000).toFixed(2)}s`).join(' '),
  };
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  console.error(`logs and results.json in ${logDir}`);
  for (const d of dialects) {
    const servers = await startBenchServers([d]);
    try {
      const url = await servers.database(d);
      if (d === 'postgres' && steps.has('repack')) {
        if (!peerProgram('pg_repack')) throw new Error('the repack step needs pg_repack: apt-get install postgresql-15-repack, or leave repack out of --steps');
        await withDb(url, (db) => db.exec('CREATE EXTENSION IF NOT EXISTS pg_repack'));
      }
      const wl = (model: WorkloadModel, verify = true) => ({ url, table: TABLE, model, rate, connections, verify });
      for (let run = 1; run <= runs; run++) {
        // --- table A: baselines
        if (['nomig', 'raw', 'raw-nolock', 'idx', 'repack'].some((s) => steps.has(s))) {
          const model = await freshTable(url);
          if (steps.has('nomig')) {
            const w = await runWithWorkload(wl(model, false), () => sleep(loadSeconds * 1000));
            note({ dialect: d, run, what: 'no migration', load: 'loaded', wallMs: w.wallMs, stats: w.stats, extra: { slowOps: w.stats.slowOps.length }, loadavg: loadavg() });
          }
          if (steps.has('raw')) {
            const i = await rawCopy(url, `${TABLE}_raw`, d);
            note({ dialect: d, run, what: 'raw chunked INSERT ... SELECT', load: 'idle', rows: i.rows, seconds: i.ms / 1000, rowsPerSec: i.rowsPerSec, loadavg: loadavg() });
            if (d === 'postgres') {
              const s = await rawCopy(url, `${TABLE}_raw`, d, true);
              note({ dialect: d, run, what: 'raw chunked INSERT ... SELECT ... FOR SHARE', load: 'idle', rows: s.rows, seconds: s.ms / 1000, rowsPerSec: s.rowsPerSec, loadavg: loadavg() });
            }
            const l = await runWithWorkload(wl(model), () => rawCopy(url, `${TABLE}_raw`, d));
            note({
              dialect: d, run, what: 'raw chunked INSERT ... SELECT', load: 'loaded', rows: l.result.rows, seconds: l.result.ms / 1000, rowsPerSec: l.result.rowsPerSec,
              wallMs: l.wallMs, stats: l.stats, verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify), loadavg: loadavg(),
            });
          }
          if (steps.has('raw-nolock') && d === 'mysql') {
            // What a copy without share locks would cost the application (issue 13's MariaDB p99).
            const l = await runWithWorkload(wl(model), () => rawCopy(url, `${TABLE}_raw`, d, false));
            note({
              dialect: d, run, what: 'raw chunked INSERT ... SELECT at READ COMMITTED (no locks)', load: 'loaded', rows: l.result.rows, seconds: l.result.ms / 1000, rowsPerSec: l.result.rowsPerSec,
              wallMs: l.wallMs, stats: l.stats, verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify), loadavg: loadavg(),
            });
          }
          if (steps.has('idx')) {
            for (const withStatus of d === 'postgres' ? [false, true] : [true]) {
              const x = await deferredIndexCopy(url, d, withStatus);
              const total = x.copy.ms + x.indexMs;
              note({
                dialect: d, run, what: `indexes after the copy${d === 'postgres' ? (withStatus ? ' (user_id + status)' : ' (user_id)') : ' (user_id + status)'}`, load: 'idle',
                rows: x.copy.rows, seconds: total / 1000, rowsPerSec: x.copy.rows / (total / 1000),
                extra: {
                  withIndexesRowsPerSec: Math.round(x.withIndexes.rowsPerSec), withIndexesS: +(x.withIndexes.ms / 1000).toFixed(2),
                  noIndexCopyRowsPerSec: Math.round(x.copy.rowsPerSec), noIndexCopyS: +(x.copy.ms / 1000).toFixed(2), indexBuildS: +(x.indexMs / 1000).toFixed(2),
                },
                loadavg: loadavg(),
              });
            }
          }
          await peerSteps(url, d, run, model, wl);
          if (d === 'postgres' && steps.has('repack')) {
            const idleMs = await pgRepack(url, TABLE);
            note({ dialect: d, run, what: 'pg_repack', load: 'idle', rows, seconds: idleMs / 1000, wallMs: idleMs, loadavg: loadavg() });
            const l = await runWithWorkload(wl(model), () => pgRepack(url, TABLE));
            note({ dialect: d, run, what: 'pg_repack', load: 'loaded', rows, seconds: l.wallMs / 1000, wallMs: l.wallMs, stats: l.stats, verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify), loadavg: loadavg() });
          }
          await dropLeftovers(url);
        }
        // --- tables B and C: the engine (and, as a diagnostic, the engine without its pre-cut-over checksum)
        for (const variant of [
          { step: 'engine', what: 'engine', options: {} as EngineVariant },
          { step: 'engine-nock', what: 'engine, checksum off', options: { checksum: false } },
          { step: 'engine-locking', what: 'engine, copy under row locks', options: { copyRowLocks: true } },
          { step: 'engine-keepidx', what: 'engine, indexes built before the copy', options: { deferIndexes: false } },
          { step: 'engine-nice', what: 'engine, --nice-ratio 0.5', options: { copyNiceRatio: 0.5 } },
          { step: 'engine-nice1', what: 'engine, --nice-ratio 1', options: { copyNiceRatio: 1 } },
          { step: 'engine-ckpt', what: 'engine, --max-load Innodb_checkpoint_age at half its maximum', options: { checkpointAgeFraction: 0.5 } },
        ]) {
          if (!steps.has(variant.step)) continue;
          const tag = variant.step;
          await freshTable(url);
          const e = await runEngine(url, d, join(logDir, `${d}-run${run}-${tag}-idle.log`), variant.options);
          note({ dialect: d, run, what: variant.what, load: 'idle', rows: e.rowsCopied, seconds: e.copyMs / 1000, rowsPerSec: e.rowsCopied / (e.copyMs / 1000), wallMs: e.totalMs, extra: engineExtra(e), loadavg: loadavg() });
          await dropLeftovers(url);

          const model = await freshTable(url);
          const l = await runWithWorkload({ ...wl(model), warmupMs: WARMUP_MS }, () => runEngine(url, d, join(logDir, `${d}-run${run}-${tag}-loaded.log`), variant.options));
          const el = l.result;
          note({
            dialect: d, run, what: variant.what, load: 'loaded', rows: el.rowsCopied, seconds: el.copyMs / 1000, rowsPerSec: el.rowsCopied / (el.copyMs / 1000),
            wallMs: el.totalMs, stats: l.stats, verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify),
            extra: { ...engineExtra(el), longestStallAtJobS: +((l.stats.longestWriteStallStart - WARMUP_MS) / 1000).toFixed(2), errorSamples: l.stats.errorSamples.slice(0, 3), slowOpsByPhase: slowOpsByPhase(l.stats.slowOps, el.phases) },
            loadavg: loadavg(),
          });
          await dropLeftovers(url);
        }
        const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
        const cliArgs = ['alter', '--url', url, '--table', TABLE, '--alter', ALTER[d], '--execute', '--drop-old-table', '--chunk-time', String(chunkTimeMs), '--copy-threads', String(copyThreads)];
        if (steps.has('engine-cli')) {
          await freshTable(url);
          const t = await timedProcess(process.execPath, [cli, ...cliArgs]);
          note({
            dialect: d, run, what: 'shadowshift alter (process)', load: 'idle', rows, seconds: t.wallS, wallMs: t.wallS * 1000,
            extra: { peakRssMB: Math.round(t.maxRssKB / 1024), cpuS: +(t.userS + t.systemS).toFixed(2), cpuUsPerRow: +(((t.userS + t.systemS) * 1e6) / rows).toFixed(2) },
            loadavg: loadavg(),
          });
          await dropLeftovers(url);
        }
        if (steps.has('engine-cli-loaded')) {
          // As the peers run: the engine in its own process, so its work does not delay the
          // workload's own event loop (the in-process engine step measures with both in one).
          const model = await freshTable(url);
          const l = await runWithWorkload({ ...wl(model), warmupMs: WARMUP_MS }, () => timedProcess(process.execPath, [cli, ...cliArgs]));
          note({
            dialect: d, run, what: 'shadowshift alter (process)', load: 'loaded', rows, seconds: l.result.wallS, wallMs: l.wallMs, stats: l.stats,
            verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify), extra: { peakRssMB: Math.round(l.result.maxRssKB / 1024) }, loadavg: loadavg(),
          });
          await dropLeftovers(url);
        }
      }
    } finally {
      await servers.stop();
    }
  }
  printSummary();
}

/** The peers under load on table A, each undone before the next; a peer not installed is said so, once per run. */
async function peerSteps(url: string, d: Dialect, run: number, model: WorkloadModel, wl: (m: WorkloadModel) => Parameters<typeof runWithWorkload>[0]): Promise<void> {
  const peers: Array<{ step: string; what: string; go: () => Promise<number>; missing?: string }> = [
    { step: 'blocking', what: d === 'mysql' ? 'ALTER TABLE ... ALGORITHM=COPY (blocks writes)' : 'ALTER TABLE (rewrite, blocks writes)', go: () => nativeAlter(url, d, TABLE, ALTER[d], 'copy') },
  ];
  if (d === 'mysql') {
    peers.push({ step: 'inplace', what: 'ALTER TABLE ... ALGORITHM=INPLACE, LOCK=NONE', go: () => nativeAlter(url, d, TABLE, ALTER[d], 'inplace') });
    peers.push({
      step: 'ptosc', what: 'pt-online-schema-change (defaults)', go: () => ptOnlineSchemaChange(url, TABLE, ALTER[d]),
      missing: peerProgram('pt-online-schema-change') ? undefined : 'not installed (apt-get install percona-toolkit)',
    });
    if (steps.has('ptosc') && !peerProgram('gh-ost')) note({ dialect: d, run, what: 'gh-ost', load: '-', loadavg: loadavg(), extra: { skipped: 'not installed: Debian does not package gh-ost, and a prebuilt binary cannot be fetched on this machine' } });
  }
  for (const p of peers) {
    if (!steps.has(p.step)) continue;
    if (p.missing) {
      note({ dialect: d, run, what: p.what, load: '-', loadavg: loadavg(), extra: { skipped: p.missing } });
      continue;
    }
    const l = await runWithWorkload(wl(model), p.go);
    note({ dialect: d, run, what: p.what, load: 'loaded', rows, seconds: l.result / 1000, wallMs: l.result, stats: l.stats, verifyEqual: l.verify?.equal, verifyDiffs: diffsOf(l.verify), loadavg: loadavg() });
    await revertChange(url, d, TABLE);
  }
}

function printSummary(): void {
  const out: string[][] = [];
  const groups = new Map<string, Record_[]>();
  for (const r of records) {
    const k = `${r.dialect}|${r.what}|${r.load}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const med = (xs: Array<number | undefined>) => {
    const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    return v.length ? median(v) : NaN;
  };
  for (const [k, rs] of groups) {
    const [d, what, load] = k.split('|');
    const rate = med(rs.map((r) => r.rowsPerSec));
    const copyToPost = med(rs.map((r) => r.extra?.toPostponedRowsPerSec as number | undefined));
    out.push([
      d!, what!, load!, String(rs.length),
      Number.isFinite(rate) ? `${Math.round(rate / 1000)}k` : '–',
      Number.isFinite(copyToPost) ? `${Math.round(copyToPost / 1000)}k` : '–',
      Number.isFinite(med(rs.map((r) => r.wallMs))) ? ms(med(rs.map((r) => r.wallMs))) : '–',
      rs[0]!.stats ? ms(med(rs.map((r) => r.stats!.latency.p99))) : '–',
      rs[0]!.stats ? ms(med(rs.map((r) => r.stats!.longestWriteStallMs))) : '–',
      rs[0]!.stats ? String(med(rs.map((r) => r.stats!.errors))) : '–',
    ]);
  }
  console.log(`\n${rows} rows, ${rate} ops/s over ${connections} connections, chunk time ${chunkTimeMs} ms, ${copyThreads} copy thread(s), medians of ${runs} run(s)\n`);
  console.log(markdownTable(['dialect', 'what', 'load', 'runs', 'rows/s (copy phase)', 'rows/s (to postponed)', 'wall', 'workload p99', 'longest write stall', 'app errors'], out));
  console.log(`\nevery run: ${jsonFile}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
