// The demo's application: a few hundred mixed reads and writes per second on
// `orders`, over a handful of connections, while the table is migrated.
//
// Open loop: operation i is due at start + i/rate whether or not earlier ones
// have finished, and its latency counts from that intended start, so time spent
// queued behind a locked table shows (a closed loop would just slow down and
// hide the stall). Latencies are kept per phase (before, during, after), by the
// phase the operation was due in.
//
// Every acknowledged write goes into the OrdersModel, the application's own
// record the table is compared with at the end. One id is never in two
// operations at once, so the order of acknowledged writes to an id is the order
// they ran in. A write whose outcome is unknown (lost connection, timeout)
// records both outcomes and leaves the id alone afterwards.

import { performance } from 'node:perf_hooks';
import { openDemoDb, ph, quoteName, type DemoDb, type DemoEngine } from './demo-db.js';
import { formatCents, formatTimestamp, ORDER_COLUMNS, sameRow, STATUSES, type OrderRow, type OrdersModel } from './orders-model.js';
import { readRow, textColumns } from './orders-table.js';
import { mulberry32 } from '../util/random.js';

export interface PhaseStats {
  /** Operations due in this phase that completed (acknowledged or failed). */
  ops: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** Failed operations by SQLSTATE / MariaDB errno / TIMEOUT / CONNECT. */
  errorsByCode: Record<string, number>;
  /** Longest time without an acknowledged write, ended by a write due in this phase. */
  longestWriteStallMs: number;
  seconds: number;
}

export interface WorkloadReport {
  phases: Record<string, PhaseStats>;
  acknowledgedWrites: number;
  /** Reads whose row differed from the application's record. */
  readMismatches: number;
  /** Acknowledged writes that matched no row although the record says the row exists. */
  lostRowWrites: number;
  unknownOutcomes: number;
  /** Operations still due when the workload stopped (it could not keep up). */
  backlogAtStop: number;
  /** A few errors and mismatches, described. */
  samples: string[];
}

export interface WorkloadOptions {
  url: string;
  table: string;
  model: OrdersModel;
  /** Operations per second, scheduled open loop. */
  rate: number;
  connections: number;
  /**
   * Check reads and affected-row counts against the model. Off where the table's
   * rows are not modelled (the native ALTER's copy): latency only.
   */
  verify: boolean;
  /** First id for inserts (default: after the seed rows). */
  firstNewId?: number;
  opTimeoutMs?: number;
  seed?: number;
}

type OpKind = 'select' | 'update' | 'insert' | 'delete';

interface Slot {
  db: DemoDb | null;
  busy: boolean;
}

interface PhaseData {
  latencies: number[];
  errors: number;
  errorsByCode: Record<string, number>;
  stall: number;
  startedAt: number;
  endedAt: number;
}

class OpTimeout extends Error {}
class ConnectFailed extends Error {}


function percentile(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/**
 * What a failure means. A server error on a live connection rolled the single
 * autocommit statement back; a lost connection or a timeout leaves the outcome
 * unknown (and the connection must be replaced).
 */
function classify(engine: DemoEngine, err: unknown): { code: string; definite: boolean } {
  if (err instanceof OpTimeout) return { code: 'TIMEOUT', definite: false };
  if (err instanceof ConnectFailed) return { code: 'CONNECT', definite: true };
  const e = err as { code?: string; errno?: number; sqlState?: string; fatal?: boolean };
  if (engine === 'mariadb') {
    const server = typeof e.errno === 'number' && typeof e.sqlState === 'string' && !e.fatal && ![1053, 1927].includes(e.errno);
    return { code: server ? String(e.errno) : String(e.code ?? 'UNKNOWN'), definite: server };
  }
  const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : null;
  return { code: sqlstate ?? String(e.code ?? 'UNKNOWN'), definite: sqlstate !== null && !sqlstate.startsWith('08') && !sqlstate.startsWith('57P') };
}

export class DemoWorkload {
  private readonly engine: DemoEngine;
  private readonly t: string;
  private readonly rand: () => number;
  private readonly interval: number;
  private readonly busy = new Set<number>();
  private readonly phaseData = new Map<string, PhaseData>();
  private current = '';
  private slots: Slot[] = [];
  private queue: Array<{ at: number; phase: string }> = [];
  private qHead = 0;
  private nextDue = 0;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private inFlight = 0;
  private readonly inFlightByPhase = new Map<string, number>();
  private idleWaiters: Array<() => void> = [];
  private lastWriteAt = 0;
  private nextId: number;
  private acknowledgedWrites = 0;
  private readMismatches = 0;
  private lostRowWrites = 0;
  private unknownOutcomes = 0;
  private readonly samples: string[] = [];

  constructor(private readonly o: WorkloadOptions) {
    this.engine = /^postgres/.test(o.url) ? 'postgres' : 'mariadb';
    this.t = quoteName(this.engine, o.table);
    this.rand = mulberry32(o.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.interval = 1000 / o.rate;
    this.nextId = o.firstNewId ?? o.model.seedRows + 1;
  }

  /** Opens the connections and starts the schedule in phase `phase`. */
  async start(phase: string): Promise<void> {
    this.slots = await Promise.all(Array.from({ length: this.o.connections }, async () => ({ db: await openDemoDb(this.o.url), busy: false })));
    this.running = true;
    this.nextDue = this.lastWriteAt = performance.now();
    this.phase(phase);
    this.tick();
  }

  /** Operations due from now on count for `name`. */
  phase(name: string): void {
    const now = performance.now();
    const prev = this.phaseData.get(this.current);
    if (prev) prev.endedAt = now;
    this.current = name;
    if (!this.phaseData.has(name)) this.phaseData.set(name, { latencies: [], errors: 0, errorsByCode: {}, stall: 0, startedAt: now, endedAt: 0 });
  }

  /** The id the next insert would use: a second workload on a copy starts after it. */
  get highestId(): number {
    return this.nextId - 1;
  }

  /**
   * Waits (up to maxMs) until every operation due in `phase` has completed, so that
   * stopping does not drop the ones still queued behind a lock from the statistics.
   */
  async settle(phase: string, maxMs: number): Promise<void> {
    const deadline = performance.now() + maxMs;
    const pending = () => (this.inFlightByPhase.get(phase) ?? 0) + this.queue.slice(this.qHead).filter((d) => d.phase === phase).length;
    while (pending() > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Stops scheduling, waits for the operations in flight, closes the connections. */
  async stop(): Promise<WorkloadReport> {
    const now = performance.now();
    const cur = this.phaseData.get(this.current);
    if (cur) {
      cur.endedAt = now;
      cur.stall = Math.max(cur.stall, now - this.lastWriteAt);
    }
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    const backlogAtStop = this.queue.length - this.qHead;
    this.queue = [];
    this.qHead = 0;
    if (this.inFlight > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    await Promise.all(this.slots.map((s) => s.db?.close()));
    this.slots = [];
    const phases: Record<string, PhaseStats> = {};
    for (const [name, d] of this.phaseData) {
      const sorted = Float64Array.from(d.latencies).sort();
      phases[name] = {
        ops: d.latencies.length,
        p50Ms: round1(percentile(sorted, 0.5)),
        p99Ms: round1(percentile(sorted, 0.99)),
        maxMs: round1(sorted.length ? sorted[sorted.length - 1]! : 0),
        errors: d.errors,
        errorsByCode: d.errorsByCode,
        longestWriteStallMs: Math.round(d.stall),
        seconds: round1((d.endedAt - d.startedAt) / 1000),
      };
    }
    return {
      phases,
      acknowledgedWrites: this.acknowledgedWrites,
      readMismatches: this.readMismatches,
      lostRowWrites: this.lostRowWrites,
      unknownOutcomes: this.unknownOutcomes,
      backlogAtStop,
      samples: this.samples,
    };
  }

  private sample(s: string): void {
    if (this.samples.length < 10) this.samples.push(s);
  }

  private tick = (): void => {
    this.timer = null;
    if (!this.running) return;
    const now = performance.now();
    while (this.nextDue <= now) {
      this.queue.push({ at: this.nextDue, phase: this.current });
      this.nextDue += this.interval;
    }
    this.pump();
    this.timer = setTimeout(this.tick, Math.max(1, Math.floor(this.nextDue - performance.now())));
  };

  private pump(): void {
    for (const slot of this.slots) {
      if (!this.running || this.qHead >= this.queue.length) break;
      if (slot.busy) continue;
      const due = this.queue[this.qHead++]!;
      slot.busy = true;
      this.inFlight++;
      this.inFlightByPhase.set(due.phase, (this.inFlightByPhase.get(due.phase) ?? 0) + 1);
      void this.run(slot, due.at, due.phase).finally(() => {
        slot.busy = false;
        this.inFlight--;
        this.inFlightByPhase.set(due.phase, this.inFlightByPhase.get(due.phase)! - 1);
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
    if (this.qHead > 4096) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private randInt(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }

  /** A random id that has a row and no operation running on it: mostly older orders, some recent ones. */
  private pickId(): number | null {
    const seeded = this.o.model.seedRows;
    for (let tries = 0; tries < 20; tries++) {
      const recent = this.nextId - 1 > seeded && (seeded === 0 || this.rand() < 0.2);
      const id = recent ? this.randInt(seeded + 1, this.nextId - 1) : this.randInt(1, Math.max(1, seeded));
      if (!this.busy.has(id) && this.o.model.kind(id) === 'present') return id;
    }
    return null;
  }

  private newRow(id: number): OrderRow {
    return {
      id: String(id),
      customer_id: String(this.randInt(1, 100_000)),
      amount: formatCents(BigInt(this.randInt(100, 99_999_99))),
      status: 'new',
      note: this.rand() < 0.1 ? null : `order ${id}, ${this.randInt(1, 9)} item(s)`,
      created_at: formatTimestamp(Math.floor(Date.now() / 1000), this.randInt(0, 999_999)),
    };
  }

  private async run(slot: Slot, dueAt: number, phase: string): Promise<void> {
    const e = this.engine;
    const q = (c: string) => quoteName(e, c);
    const r = this.rand() * 100;
    let kind: OpKind = r < 30 ? 'select' : r < 75 ? 'update' : r < 95 ? 'insert' : 'delete';
    const id = kind === 'insert' ? null : this.pickId();
    if (id === null) kind = 'insert';

    let sql: string;
    let params: unknown[];
    let before: OrderRow | null = null;
    let after: OrderRow | null = null;
    const rowId = id ?? this.nextId++;
    this.busy.add(rowId);
    if (kind === 'insert') {
      after = this.newRow(rowId);
      sql = `INSERT INTO ${this.t} (${ORDER_COLUMNS.map(q).join(', ')}) VALUES (${ORDER_COLUMNS.map((_, i) => ph(e, i + 1)).join(', ')})`;
      params = ORDER_COLUMNS.map((c) => after![c]);
    } else {
      const state = this.o.model.get(rowId);
      before = state.kind === 'present' ? state.row : null;
      if (kind === 'select') {
        sql = `SELECT ${textColumns(e)} FROM ${this.t} WHERE ${q('id')} = ${ph(e, 1)}`;
        params = [rowId];
      } else if (kind === 'delete') {
        sql = `DELETE FROM ${this.t} WHERE ${q('id')} = ${ph(e, 1)}`;
        params = [rowId];
      } else if (this.rand() < 0.7) {
        // The order is paid or shipped, and its amount settled.
        after = { ...before!, status: STATUSES[this.randInt(1, 2)]!, amount: formatCents(BigInt(this.randInt(100, 99_999_99))) };
        sql = `UPDATE ${this.t} SET ${q('status')} = ${ph(e, 1)}, ${q('amount')} = ${ph(e, 2)} WHERE ${q('id')} = ${ph(e, 3)}`;
        params = [after.status, after.amount, rowId];
      } else {
        after = { ...before!, note: `${before!.note ?? 'order'}; changed ${this.randInt(1, 999)}`.slice(-200) };
        sql = `UPDATE ${this.t} SET ${q('note')} = ${ph(e, 1)} WHERE ${q('id')} = ${ph(e, 2)}`;
        params = [after.note, rowId];
      }
    }

    const data = this.phaseData.get(phase)!;
    let keepBusy = false;
    try {
      const db = await this.connection(slot);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OpTimeout(`no answer within ${this.o.opTimeoutMs ?? 30_000} ms`)), this.o.opTimeoutMs ?? 30_000);
      });
      let affected = 0;
      let rows: Record<string, unknown>[] = [];
      try {
        if (kind === 'select') rows = await Promise.race([db.query<Record<string, unknown>>(sql, params), timeout]);
        else affected = await Promise.race([db.exec(sql, params), timeout]);
      } finally {
        clearTimeout(timer);
      }
      const now = performance.now();
      data.latencies.push(now - dueAt);
      if (kind === 'select') {
        const got = rows[0] ? readRow(rows[0]) : null;
        if (this.o.verify && !sameRow(before, got)) {
          this.readMismatches++;
          this.sample(`read of id ${rowId} returned ${got ? 'a different row' : 'no row'} than the application wrote`);
        }
        return;
      }
      this.acknowledgedWrites++;
      data.stall = Math.max(data.stall, now - this.lastWriteAt);
      this.lastWriteAt = now;
      if (this.o.verify && affected !== 1) {
        this.lostRowWrites++;
        this.sample(`${kind} of id ${rowId} affected ${affected} rows, expected 1`);
      }
      if (kind === 'delete') this.o.model.setAbsent(rowId);
      else this.o.model.setPresent(after!);
    } catch (err) {
      data.latencies.push(performance.now() - dueAt);
      const c = classify(e, err);
      data.errors++;
      data.errorsByCode[c.code] = (data.errorsByCode[c.code] ?? 0) + 1;
      this.sample(`${kind} of id ${rowId} failed (${c.code}): ${(err as Error).message}`);
      if (!c.definite) {
        if (kind !== 'select') {
          this.unknownOutcomes++;
          this.o.model.setUnknown(rowId, [before, kind === 'delete' ? null : after]);
          keepBusy = true;
        }
        slot.db?.destroy();
        slot.db = null;
      }
    } finally {
      if (!keepBusy) this.busy.delete(rowId);
    }
  }

  private async connection(slot: Slot): Promise<DemoDb> {
    if (slot.db && !slot.db.broken) return slot.db;
    slot.db?.destroy();
    slot.db = null;
    try {
      slot.db = await openDemoDb(this.o.url);
      return slot.db;
    } catch (err) {
      throw new ConnectFailed(`cannot connect: ${(err as Error).message}`);
    }
  }
}
