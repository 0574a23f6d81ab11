// Open loop: operation i is scheduled at start + i/rate whether or not earlier
// ones finished; latency counts from the scheduled time, so queueing behind a
// blocked table counts. Each connection is a slot that runs one operation at
// a time.

import { performance } from 'node:perf_hooks';
import { dialectOf, openDb, quoteIdent, type Dialect } from '../db.js';
import { classifyOpError } from './errors.js';
import { WorkloadIds } from './ids.js';
import type { WorkloadModel } from './model.js';
import { OPERATIONS, pickKind } from './ops/mix.js';
import type { OpContext } from './ops/op.js';
import { resolveOptions, type ResolvedOptions, type WorkloadOptions } from './options.js';
import { mulberry32, RandomValues } from './random.js';
import { runStatement, type Slot } from './slot.js';
import { StatsRecorder, type WorkloadStats } from './stats.js';

export class Workload {
  readonly model: WorkloadModel;
  private readonly o: ResolvedOptions;
  private readonly dialect: Dialect;
  private readonly rand: () => number;
  private readonly ids: WorkloadIds;
  private readonly rec: StatsRecorder;
  private readonly ctx: OpContext;
  private slots: Slot[] = [];
  private queue: number[] = [];
  private qHead = 0;
  private timer: NodeJS.Timeout | null = null;
  private interval: number;
  private nextDue = 0;
  private running = false;
  private paused = false;
  private stopping = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private t0 = 0;
  private pausedMs = 0;
  private pausedAt = 0;
  private backlogAtStop = 0;
  private endedAt = 0;

  constructor(options: WorkloadOptions) {
    this.o = resolveOptions(options);
    this.model = options.model;
    this.dialect = dialectOf(options.url);
    this.rand = mulberry32(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.interval = 1000 / this.o.rate;
    this.ids = new WorkloadIds(this.model, this.o.highIdStart, this.o.reuseShare, this.rand);
    this.rec = new StatsRecorder(this.o.maxSamples);
    const dialect = this.dialect;
    this.ctx = {
      dialect,
      table: quoteIdent(dialect, options.table),
      quote: (name) => quoteIdent(dialect, name),
      model: this.model,
      ids: this.ids,
      random: new RandomValues(this.rand),
      stats: this.rec,
    };
  }

  /** Opens the connections and starts the schedule. */
  async start(): Promise<void> {
    if (this.running) throw new Error('workload already started');
    this.slots = await Promise.all(Array.from({ length: this.o.connections }, async () => ({ db: await openDb(this.o.url), busy: false })));
    this.running = true;
    this.t0 = performance.now();
    this.rec.start(this.t0);
    this.nextDue = this.t0;
    this.tick();
  }

  /** Stops scheduling, waits for in-flight operations, closes the connections. */
  async stop(): Promise<WorkloadStats> {
    if (!this.running) throw new Error('workload not running');
    const now = performance.now();
    if (!this.paused) this.rec.noteStall(now);
    else this.pausedMs += now - this.pausedAt;
    this.endedAt = now;
    this.stopping = true;
    this.clearTimer();
    this.backlogAtStop = this.queue.length - this.qHead;
    this.queue = [];
    this.qHead = 0;
    await this.idle();
    this.running = false;
    await Promise.all(this.slots.map((s) => s.db?.close()));
    this.slots = [];
    return this.stats();
  }

  /** Stops starting operations and waits for the in-flight ones. Time paused does not count. */
  async pause(): Promise<void> {
    if (!this.running || this.paused) return;
    this.paused = true;
    this.pausedAt = performance.now();
    this.rec.noteStall(this.pausedAt);
    this.clearTimer();
    await this.idle();
  }

  /** Writes acknowledged so far: tests wait on it to know the application got through. */
  get writesAcknowledged(): number {
    return this.rec.writesAcknowledged;
  }

  /** Continues the schedule where it stopped (queued operations keep their place; the pause is not counted as latency). */
  resume(): void {
    if (!this.running || !this.paused || this.stopping) return;
    const now = performance.now();
    const d = now - this.pausedAt;
    this.pausedMs += d;
    for (let i = this.qHead; i < this.queue.length; i++) this.queue[i]! += d;
    this.nextDue += d;
    this.rec.restartStallClock(now);
    this.paused = false;
    this.tick();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Statistics so far (callable while running). */
  stats(): WorkloadStats {
    const end = this.running && !this.stopping ? performance.now() : this.endedAt;
    const pausedNow = this.paused && !this.stopping ? end - this.pausedAt : 0;
    const durationMs = Math.max(0, end - this.t0 - this.pausedMs - pausedNow);
    return this.rec.snapshot(durationMs, this.o.rate, this.backlogAtStop);
  }

  // -- scheduling -----------------------------------------------------------

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick = (): void => {
    this.timer = null;
    if (!this.running || this.paused || this.stopping) return;
    const now = performance.now();
    while (this.nextDue <= now) {
      this.queue.push(this.nextDue);
      this.nextDue += this.interval;
    }
    this.pump();
    this.timer = setTimeout(this.tick, Math.max(1, Math.floor(this.nextDue - performance.now())));
  };

  private pump(): void {
    if (this.paused || this.stopping) return;
    for (const slot of this.slots) {
      if (this.qHead >= this.queue.length) break;
      if (slot.busy) continue;
      const scheduledAt = this.queue[this.qHead++]!;
      slot.busy = true;
      this.inFlight++;
      void this.run(slot, scheduledAt).finally(() => {
        slot.busy = false;
        this.inFlight--;
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
    if (this.qHead > 4096 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // -- operations -----------------------------------------------------------

  private async run(slot: Slot, scheduledAt: number): Promise<void> {
    const op = OPERATIONS[pickKind(this.rand, this.o.mix, this.o.pkChangeShare, this.ids.live.size)];
    this.rec.started(op.kind);
    const target = op.target(this.ctx);
    const { sql, params } = op.statement(this.ctx, target);
    try {
      const { affected, rows } = await runStatement(slot, this.o.url, op.write, sql, params, this.o.opTimeoutMs);
      const now = performance.now();
      this.rec.succeeded(op.write, now - scheduledAt, scheduledAt);
      if (op.write) {
        if (!this.paused && !this.stopping) this.rec.noteStall(now);
        else if (!this.stopping) this.rec.restartStallClock(now);
        if (affected !== 1) this.rec.anomaly(op.kind, op.sampleId(target), `affected ${affected} rows, the model expected 1`, now);
      }
      // The write was acknowledged: the model records what it asked for, so a
      // lost row shows up in the final comparison as well as in `anomalies`.
      op.ok(this.ctx, target, rows);
    } catch (err) {
      const now = performance.now();
      const c = classifyOpError(this.dialect, err);
      this.rec.failed(op.kind, op.write, now - scheduledAt, c, now);
      if (c.definite) op.failed(this.ctx, target);
      else op.unknown(this.ctx, target);
      if (c.fatal && slot.db) {
        slot.db.destroy();
        slot.db = null;
      }
    }
  }
}

/** Creates, starts and returns a workload. */
export async function startWorkload(options: WorkloadOptions): Promise<Workload> {
  const w = new Workload(options);
  await w.start();
  return w;
}
