// The adversarial workload's runner: open-loop transactions (transaction i is
// scheduled at start + i/rate whatever earlier ones did), each planned by
// recipes.ts against the model and run as BEGIN; statements; COMMIT/ROLLBACK on
// one of a few connections. Every statement names the table, so the workload
// follows the cut-over's rename like an application would.
//
// Outcomes and the model (see model.ts):
//  - COMMIT acknowledged: the transaction's changes go into the model;
//  - ROLLBACK, or any failure before COMMIT was sent (a server error, a lost
//    connection, a client timeout): nothing committed, the model stays;
//  - COMMIT sent but not acknowledged (connection lost, timeout, or the
//    'abandon' recipe cutting the socket right after sending it): unknown.

import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { dialectOf, openDb, type Db } from '../db.js';
import { classifyError, mulberry32, summarize, type LatencySummary } from '../workload/index.js';
import { Planner, pickRecipe, RECIPE_WEIGHTS, type Recipe, type Step, type StepKind, type TxPlan } from './recipes.js';
import { KeySpace } from './keyspace.js';
import type { AdvModel } from './model.js';
import { readRow, RowFactory, Statements } from './rows.js';
import { prepareSession } from './schema.js';

export interface AdvWorkloadOptions {
  url: string;
  table: string;
  model: AdvModel;
  flavor: 'mariadb' | 'mysql' | 'postgres';
  tenants: number;
  seededFamilies: number;
  /** First sid not used by the seed. */
  nextSid: number;
  /** Transactions per second (default 120). */
  rate?: number;
  connections?: number;
  seed?: number;
  /** Client-side limit on one statement (default 20 s); its expiry replaces the connection. */
  opTimeoutMs?: number;
  /** Appends every acknowledged transaction here (JSON lines, large values elided): the history behind a difference. */
  traceFile?: string;
}

export interface AdvError {
  recipe: Recipe;
  key: string;
  message: string;
  atCommit: boolean;
  at: number;
}

export interface AdvStats {
  durationMs: number;
  started: number;
  /** Transactions whose COMMIT was acknowledged, by recipe. */
  committed: Record<string, number>;
  /** Statements of acknowledged transactions, by kind. */
  committedSteps: Record<string, number>;
  /** Transactions rolled back on purpose (rollback recipe, the dup-insert recipe after its expected error). */
  rolledBack: number;
  /** The dup-insert recipe's duplicate-key errors, as planned. */
  expectedErrors: number;
  /** Failures nobody planned (any statement, COMMIT included), by MySQL errno / SQLSTATE / client code. */
  errors: number;
  errorsByKey: Record<string, number>;
  errorSamples: AdvError[];
  unknownOutcomes: number;
  /** Statements whose affected-row count differed from the model's. */
  anomalies: number;
  anomalySamples: string[];
  /** Reads (inside transactions) whose row differed from the model's. */
  readMismatches: number;
  readMismatchSamples: string[];
  latency: LatencySummary;
}

interface Slot {
  db: Db | null;
  busy: boolean;
}

class Timeout extends Error {}

const isDuplicate = (err: unknown): boolean => {
  const e = err as { errno?: number; code?: string };
  return e?.errno === 1062 || e?.code === '23505';
};

export class AdvWorkload {
  private readonly rand: () => number;
  private readonly planner: Planner;
  private readonly keys: KeySpace;
  private readonly statements: Statements;
  private readonly slots: Slot[] = [];
  private readonly rate: number;
  private readonly timeoutMs: number;
  private queue: number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private nextDue = 0;
  private running = false;
  private paused = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private t0 = 0;
  private pausedMs = 0;
  private pausedAt = 0;
  private endedAt = 0;
  private readonly latencies: number[] = [];
  private readonly s = {
    started: 0,
    committed: {} as Record<string, number>,
    committedSteps: {} as Record<string, number>,
    rolledBack: 0,
    expectedErrors: 0,
    errors: 0,
    errorsByKey: {} as Record<string, number>,
    errorSamples: [] as AdvError[],
    unknownOutcomes: 0,
    anomalies: 0,
    anomalySamples: [] as string[],
    readMismatches: 0,
    readMismatchSamples: [] as string[],
  };

  constructor(private readonly o: AdvWorkloadOptions) {
    const d = dialectOf(o.url);
    this.rand = mulberry32(o.seed ?? Math.floor(Math.random() * 2 ** 32));
    const rows = new RowFactory(d, o.flavor, this.rand, o.nextSid);
    this.statements = new Statements(d, o.table, rows.columns);
    this.keys = new KeySpace(o.model, this.rand, o.tenants, o.seededFamilies);
    this.planner = new Planner(o.model, this.keys, rows, this.statements, this.rand);
    this.rate = o.rate ?? 120;
    this.timeoutMs = o.opTimeoutMs ?? 20_000;
    for (const r of Object.keys(RECIPE_WEIGHTS)) if (!['rollback', 'dup-insert', 'abandon'].includes(r)) this.s.committed[r] = 0;
  }

  async start(): Promise<void> {
    for (let i = 0; i < (this.o.connections ?? 6); i++) this.slots.push({ db: await this.connect(), busy: false });
    this.running = true;
    this.t0 = this.nextDue = performance.now();
    this.tick();
  }

  async pause(): Promise<void> {
    if (this.paused) return;
    this.paused = true;
    this.pausedAt = performance.now();
    this.clearTimer();
    await this.idle();
  }

  resume(): void {
    if (!this.paused || !this.running) return;
    const d = performance.now() - this.pausedAt;
    this.pausedMs += d;
    this.queue = this.queue.map((t) => t + d);
    this.nextDue += d;
    this.paused = false;
    this.tick();
  }

  async stop(): Promise<AdvStats> {
    if (this.paused) this.pausedMs += performance.now() - this.pausedAt;
    this.running = false;
    this.clearTimer();
    this.queue = [];
    await this.idle();
    this.endedAt = performance.now();
    await Promise.all(this.slots.map((s) => s.db?.close()));
    return this.stats();
  }

  /** Transactions acknowledged so far, summed over recipes. */
  get committedTotal(): number {
    return Object.values(this.s.committed).reduce((a, b) => a + b, 0);
  }

  stats(): AdvStats {
    const end = this.running ? performance.now() : this.endedAt;
    const pausedNow = this.paused && this.running ? end - this.pausedAt : 0;
    return {
      ...structuredClone(this.s),
      durationMs: end - this.t0 - this.pausedMs - pausedNow,
      latency: summarize(this.latencies),
    };
  }

  /**
   * While paused: commits one insert (into the model too) and returns its key. Once
   * that row is in a copy of the table, every transaction acknowledged before it is
   * too: the stream applies changes in commit order.
   */
  async sentinel(): Promise<{ tenant: string; k: string }> {
    if (!this.paused) throw new Error('sentinel() needs the workload paused');
    const plan = this.planner.plan('insert');
    const db = await this.connect();
    try {
      await db.exec(db.dialect === 'mysql' ? 'START TRANSACTION' : 'BEGIN');
      for (const step of plan.steps) await db.exec(step.sql, step.params);
      await db.exec('COMMIT');
      plan.view.commit();
      const row = [...plan.view.written.values()][0]!;
      return { tenant: row.tenant_id!, k: row.k! };
    } finally {
      this.keys.release(plan.held);
      await db.close();
    }
  }

  // -- scheduling ---------------------------------------------------------------

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick = (): void => {
    this.timer = null;
    if (!this.running || this.paused) return;
    const now = performance.now();
    for (; this.nextDue <= now; this.nextDue += 1000 / this.rate) this.queue.push(this.nextDue);
    this.pump();
    this.timer = setTimeout(this.tick, Math.max(1, Math.floor(this.nextDue - performance.now())));
  };

  private pump(): void {
    for (const slot of this.slots) {
      if (this.paused || !this.running || this.queue.length === 0) return;
      if (slot.busy) continue;
      const scheduledAt = this.queue.shift()!;
      slot.busy = true;
      this.inFlight++;
      void this.run(slot, scheduledAt).finally(() => {
        slot.busy = false;
        this.inFlight--;
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
  }

  private idle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((r) => this.idleWaiters.push(r));
  }

  // -- transactions ---------------------------------------------------------------

  private async connect(): Promise<Db> {
    const db = await openDb(this.o.url);
    await prepareSession(db);
    return db;
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Timeout(`statement did not finish within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }

  private async run(slot: Slot, scheduledAt: number): Promise<void> {
    const plan = this.planner.plan(pickRecipe(this.rand));
    this.s.started++;
    let atCommit = false;
    let db: Db | null = null;
    try {
      db = slot.db && !slot.db.broken ? slot.db : (slot.db = await this.connect());
      await this.timed(db.exec(db.dialect === 'mysql' ? 'START TRANSACTION' : 'BEGIN'));
      let failedAsPlanned = false;
      for (const step of plan.steps) {
        if (!(await this.runStep(db, plan, step))) {
          failedAsPlanned = true;
          break;
        }
      }
      if (plan.end === 'rollback' || failedAsPlanned) {
        await this.timed(db.exec('ROLLBACK'));
        this.s.rolledBack++;
      } else if (plan.end === 'abandon') {
        atCommit = true;
        const commit = db.exec('COMMIT');
        commit.catch(() => undefined);
        db.dropSocket();
        slot.db = null;
        plan.view.markUnknown();
        this.s.unknownOutcomes++;
      } else {
        atCommit = true;
        await this.timed(db.exec('COMMIT'));
        plan.view.commit();
        if (this.o.traceFile) this.trace(plan);
        this.s.committed[plan.recipe]!++;
        for (const step of plan.steps) this.s.committedSteps[step.kind] = (this.s.committedSteps[step.kind] ?? 0) + 1;
      }
    } catch (err) {
      const c = err instanceof Timeout ? { key: 'TIMEOUT', message: err.message, definite: false, fatal: true } : classifyError(db?.dialect ?? 'mysql', err);
      this.s.errors++;
      this.s.errorsByKey[c.key] = (this.s.errorsByKey[c.key] ?? 0) + 1;
      if (this.s.errorSamples.length < 20) this.s.errorSamples.push({ recipe: plan.recipe, key: c.key, message: c.message, atCommit, at: performance.now() - this.t0 });
      if (atCommit && !c.definite) {
        plan.view.markUnknown();
        this.s.unknownOutcomes++;
      }
      // Before COMMIT nothing can have committed; a live session is rolled back, a dead one was by the server.
      if (c.fatal || err instanceof Timeout) {
        slot.db?.destroy();
        slot.db = null;
      } else if (db) {
        await this.timed(db.exec('ROLLBACK')).catch(() => {
          db?.destroy();
          slot.db = null;
        });
      }
    } finally {
      this.latencies.push(performance.now() - scheduledAt);
      this.keys.release(plan.held);
    }
  }

  /** Runs one statement and checks it against the plan; false when it failed as planned (the rest is skipped). */
  private async runStep(db: Db, plan: TxPlan, step: Step): Promise<boolean> {
    if (step.expect === 'duplicate') {
      try {
        await this.timed(db.exec(step.sql, step.params));
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        this.s.expectedErrors++;
        return false;
      }
      this.anomaly(plan, step.kind, 'an INSERT of an existing key or sid succeeded');
      return true;
    }
    if (step.kind === 'select') {
      const rows = await this.timed(db.query<Record<string, unknown>>(step.sql, step.params));
      const got = rows[0] ? readRow(this.statements.columns, rows[0]) : null;
      const want = step.check ?? null;
      const bad = want === null ? (got ? ['row present'] : []) : got === null ? ['row missing'] : Object.keys(want).filter((c) => want[c] !== got[c]);
      if (bad.length) {
        this.s.readMismatches++;
        if (this.s.readMismatchSamples.length < 20) {
          this.s.readMismatchSamples.push(`${plan.recipe} ${step.params.join('/')}: ${bad.map((c) => `${c} expected ${JSON.stringify(want?.[c])} got ${JSON.stringify(got?.[c])}`).join('; ')}`);
        }
      }
      return true;
    }
    const { affectedRows } = await this.timed(db.exec(step.sql, step.params));
    if (affectedRows !== step.expect) this.anomaly(plan, step.kind, `affected ${affectedRows} rows, the model expected ${step.expect}`);
    return true;
  }

  private trace(plan: TxPlan): void {
    const short = (v: unknown) => (Buffer.isBuffer(v) ? `<${v.length} bytes>` : typeof v === 'string' && v.length > 100 ? `<${v.length} chars>` : v);
    const line = { at: Math.round(performance.now() - this.t0), recipe: plan.recipe, steps: plan.steps.map((x) => [x.kind, x.sql.slice(0, 60), ...x.params.map(short)]) };
    appendFileSync(this.o.traceFile!, JSON.stringify(line) + '\n');
  }

  private anomaly(plan: TxPlan, kind: StepKind, message: string): void {
    this.s.anomalies++;
    if (this.s.anomalySamples.length < 20) this.s.anomalySamples.push(`${plan.recipe}/${kind}: ${message}`);
  }
}

export async function startAdvWorkload(options: AdvWorkloadOptions): Promise<AdvWorkload> {
  const w = new AdvWorkload(options);
  await w.start();
  return w;
}
