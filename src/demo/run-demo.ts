// `shadowshift demo`: start a database, seed `orders`, put an application
// workload on it, run the real online ALTER (the `alter` command's own code
// path, handed in by the CLI), and measure what the application saw before,
// during and after, next to the same ALTER done natively. Then check the table
// against the application's record of its writes, and stop everything.
//
// Everything the demo starts is stopped on every exit path: the `finally`
// below for errors and Ctrl-C (the first SIGINT/SIGTERM interrupts whatever
// step runs; during the ALTER the job aborts and cleans up first), and the
// servers' exit hooks (server-process.ts) when the process exits before that.

import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AlterResult, JobObserver } from '../engine/job.js';
import type { JobState } from '../engine/job-state.js';
import { AbortedError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { quoteName, withDemoDb, type DemoEngine } from './demo-db.js';
import { appWindow, type DemoReport } from './demo-report.js';
import { startDemoServer, type DemoServer } from './demo-server.js';
import { DemoWorkload } from './demo-workload.js';
import { OrdersModel } from './orders-model.js';
import { checkAgainstModel, DEMO_TABLE, defaultAlter, seedOrders } from './orders-table.js';

export interface DemoOptions {
  engine: DemoEngine;
  rows: number;
  /** Application operations per second and connections. */
  rate: number;
  connections: number;
  /** ALTER TABLE clauses; default: defaultAlter(engine). */
  alter?: string;
  /** alter's --chunk-time; its own default when undefined. */
  chunkTimeMs?: number;
  /** Seconds the application runs before and after the migration. */
  sampleSeconds: number;
  compareNative: boolean;
  keep: boolean;
  log: Logger;
  /** Runs `shadowshift alter` with these arguments, through the CLI's own code path. */
  runAlter: (argv: string[], observer: JobObserver) => Promise<AlterResult>;
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Seconds per job state, from the observer's state changes (preflight starts when the ALTER does). */
class StateClock {
  readonly seconds: Record<string, number> = {};
  private state: JobState = 'preflight';
  private since = performance.now();

  readonly observer: JobObserver = {
    stateChanged: (state) => {
      const now = performance.now();
      this.seconds[this.state] = round1((this.seconds[this.state] ?? 0) + (now - this.since) / 1000);
      this.state = state;
      this.since = now;
    },
  };
}

/** Interrupts the demo's own waits on the first SIGINT/SIGTERM; a second one exits at once (the exit hooks still stop the servers). */
function interruptOnSignals(log: Logger): { signal: AbortSignal; remove(): void } {
  const controller = new AbortController();
  let received = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++received > 1) process.exit(130);
    log.warn({ signal: sig }, `${sig}: stopping the demo and everything it started`);
    controller.abort(new AbortedError(`demo interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    remove() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_./:@=-]+$/.test(s)) return s;
  return /["$`\\!]/.test(s) ? `'${s.replace(/'/g, `'\\''`)}'` : `"${s}"`;
}

export async function runDemo(o: DemoOptions): Promise<DemoReport> {
  const log = o.log;
  const started = performance.now();
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    try {
      return await work();
    } finally {
      timings[name] = round1((performance.now() - s) / 1000);
    }
  };
  const interrupt = interruptOnSignals(log);
  const { signal } = interrupt;
  const check = () => {
    if (signal.aborted) throw signal.reason;
  };
  let server: DemoServer | null = null;
  const workloads: DemoWorkload[] = [];
  let kept: DemoReport['kept'] = null;
  try {
    server = await step('serverStart', () => startDemoServer(o.engine, log));
    const { url, description } = server;
    check();
    log.info({ rows: o.rows }, `seeding ${o.rows.toLocaleString('en-US')} rows into ${DEMO_TABLE}`);
    const model = await step('seed', () => withDemoDb(url, (db) => seedOrders(db, o.rows)));
    check();

    const workload = new DemoWorkload({ url, table: DEMO_TABLE, model, rate: o.rate, connections: o.connections, verify: true });
    workloads.push(workload);
    await workload.start('before');
    log.info({ rate: o.rate, connections: o.connections }, `application workload running; measuring ${o.sampleSeconds}s before the migration`);
    await step('before', () => sleep(o.sampleSeconds * 1000, signal));

    const alter = o.alter ?? defaultAlter(o.engine);
    const argv = ['--url', url, '--table', DEMO_TABLE, '--alter', alter, '--execute', '--control-socket', join(server.dir, 'ctl.sock')];
    if (o.chunkTimeMs !== undefined) argv.push('--chunk-time', String(o.chunkTimeMs));
    const clock = new StateClock();
    workload.phase('during');
    const result = await step('alter', () => o.runAlter(argv, clock.observer));
    workload.phase('after');
    await step('after', () => sleep(o.sampleSeconds * 1000, signal));
    // Operations due from here on are not reported; those due before finish first.
    workload.phase('stopping');
    await workload.settle('after', 30_000);
    const app = await workload.stop();
    workloads.pop();

    const tableCheck = await step('verify', () => withDemoDb(url, (db) => checkAgainstModel(db, DEMO_TABLE, model)));
    let native: DemoReport['native'] = null;
    if (result.backupTable) {
      const backup = result.backupTable;
      if (o.compareNative) {
        native = await step('native', () => measureNative(url, backup, alter, o, workload.highestId + 1, workloads, signal));
      }
      // The demo's database keeps only the migrated table.
      await withDemoDb(url, (db) => db.exec(`DROP TABLE ${quoteName(db.engine, backup)}`));
    }

    if (o.keep) {
      const stop = server.keep();
      kept = {
        url,
        tryNext: `npx shadowshift alter --table ${DEMO_TABLE} --alter ${shellQuote(o.engine === 'postgres' ? 'ALTER COLUMN amount TYPE numeric(14,2)' : 'MODIFY amount DECIMAL(14,2) NOT NULL')} --execute`,
        stop,
      };
    } else {
      await step('stop', () => server!.stop());
    }
    server = null;
    timings.total = round1((performance.now() - started) / 1000);
    const copying = clock.seconds.copying ?? 0;
    return {
      engine: o.engine,
      server: description,
      rows: o.rows,
      alter,
      command: `shadowshift alter ${argv.map(shellQuote).join(' ')}`,
      alterSeconds: timings.alter ?? 0,
      states: clock.seconds,
      rowsCopied: result.rowsCopied,
      rowsPerSecond: copying > 0 ? Math.round(result.rowsCopied / copying) : 0,
      eventsApplied: result.eventsApplied,
      cutoverAttempts: result.cutoverAttempts,
      cutoverLockedMs: result.cutoverLockedMs,
      checksum: result.checksum.ran
        ? { status: 'match', chunks: result.checksum.chunksCompared, repaired: result.repairedChunks }
        : { status: 'off', chunks: 0, repaired: 0 },
      tableMatches: tableCheck.matches && app.readMismatches === 0 && app.lostRowWrites === 0,
      tableCheck: { ...tableCheck, acknowledgedWrites: app.acknowledgedWrites, readMismatches: app.readMismatches, lostRowWrites: app.lostRowWrites, unknownOutcomes: app.unknownOutcomes },
      app: { rate: o.rate, connections: o.connections, before: appWindow(app.phases.before), during: appWindow(app.phases.during), after: appWindow(app.phases.after) },
      native,
      timings,
      kept,
    };
  } finally {
    interrupt.remove();
    for (const w of workloads) await w.stop().catch(() => undefined);
    if (server) await server.stop().catch((err: Error) => log.error({ err: err.message }, 'stopping the demo database failed'));
  }
}

/**
 * The same ALTER, natively, on the original table the cut-over kept as a backup:
 * same rows, same indexes, same workload. The workload's latency while it runs is
 * what the application would have seen without shadowshift.
 */
async function measureNative(url: string, table: string, alter: string, o: DemoOptions, firstNewId: number, workloads: DemoWorkload[], signal: AbortSignal) {
  // The backup's rows are not modelled (the application stopped writing it at the cut-over): latency only.
  const w = new DemoWorkload({ url, table, model: new OrdersModel(o.rows), rate: o.rate, connections: o.connections, verify: false, firstNewId });
  workloads.push(w);
  o.log.info({ table }, 'running the same ALTER natively on the original table (kept as a backup by the cut-over), under the same workload');
  await w.start('warm-up');
  await sleep(Math.min(1000, o.sampleSeconds * 1000), signal);
  w.phase('during');
  const s = performance.now();
  await withDemoDb(url, (db) => db.exec(`ALTER TABLE ${quoteName(db.engine, table)} ${alter}`));
  const alterSeconds = round1((performance.now() - s) / 1000);
  w.phase('after');
  // Operations queued behind the ALTER finish now; they count for 'during' (when they were due).
  await w.settle('during', 30_000);
  const report = await w.stop();
  workloads.pop();
  return { alterSeconds, app: appWindow(report.phases.during) };
}
