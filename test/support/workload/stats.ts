// What the workload measured: latency from the scheduled time, errors,
// anomalies, read mismatches and write stalls.

import { performance } from 'node:perf_hooks';
import type { Classified } from './errors.js';
import type { OpKind } from './ops/op.js';

export interface WorkloadError {
  op: OpKind;
  /** MySQL errno as a string ('1146'), PostgreSQL SQLSTATE ('42P01'), or a client code ('TIMEOUT', 'ECONNRESET', 'CONNECT'). */
  key: string;
  code?: string;
  errno?: number;
  message: string;
  /** false when the statement may have committed (its ids are then unknown in the model). */
  definite: boolean;
  /** ms since start. */
  at: number;
}

export interface WorkloadSample {
  op: OpKind;
  id: string;
  message: string;
  at: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface WorkloadStats {
  /** Running time in ms, pauses excluded. */
  durationMs: number;
  targetRate: number;
  /** Operations taken off the schedule (started). */
  ops: number;
  /** Operations that succeeded. */
  okOps: number;
  opsByKind: Record<OpKind, number>;
  /** Failed operations (any reason); errorsByKey counts them by key (e.g. '1146', '42P01', 'TIMEOUT'). */
  errors: number;
  errorsByKey: Record<string, number>;
  errorSamples: WorkloadError[];
  /** Failed operations whose outcome is unknown (ids marked unknown in the model). */
  unknownOutcomes: number;
  /**
   * Acknowledged writes whose affected-row count disagreed with the model
   * (e.g. an UPDATE of an id the model holds matched 0 rows): the table lost
   * or gained a row behind the application's back.
   */
  anomalies: number;
  anomalySamples: WorkloadSample[];
  /** SELECTs whose row differed from the model (or was missing). */
  readMismatches: number;
  readMismatchSamples: WorkloadSample[];
  /** All completed operations, ms from the scheduled start (queueing included). */
  latency: LatencySummary;
  /** Writes only (insert/update/update-pk/delete). */
  writeLatency: LatencySummary;
  /**
   * Longest write stall, ms: the longest interval, while running and not
   * paused, in which no write completed successfully. Measured between
   * consecutive successful write completions, from start (or resume) to the
   * first, and from the last to stop() (or pause()).
   */
  longestWriteStallMs: number;
  /** ms since start at which the longest stall began. */
  longestWriteStallStart: number;
  /** Largest single write latency (from scheduled start), ms. */
  maxWriteLatencyMs: number;
  /** Successful writes per second of running time. */
  writesPerSec: number;
  /** Completed operations per second of running time. */
  opsPerSec: number;
  /** Scheduled operations never started because stop() came first. */
  backlogAtStop: number;
  /** Operations that took SLOW_OP_MS or more: when they were scheduled (performance.now()) and how long they took, to place them in time. */
  slowOps: Array<{ at: number; ms: number }>;
}

/** What counts as a slow operation in `slowOps`: near the p99 the benchmarks aim at. */
export const SLOW_OP_MS = 20;

export function summarize(values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const s = Float64Array.from(values).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

/** Counts as the operations report in; the scheduler owns time (start, pauses, stop). */
export class StatsRecorder {
  private t0 = 0;
  private lastWriteAt = 0;
  private latencies: number[] = [];
  private writeLatencies: number[] = [];
  private opsStarted = 0;
  private okOps = 0;
  private okWrites = 0;
  private opsByKind: Record<OpKind, number> = { insert: 0, update: 0, 'update-pk': 0, delete: 0, select: 0 };
  private errors = 0;
  private errorsByKey: Record<string, number> = {};
  private errorSamples: WorkloadError[] = [];
  private unknownOutcomes = 0;
  private anomalies = 0;
  private anomalySamples: WorkloadSample[] = [];
  private readMismatches = 0;
  private readMismatchSamples: WorkloadSample[] = [];
  private longestStall = 0;
  private longestStallStart = 0;
  private slowOps: Array<{ at: number; ms: number }> = [];

  constructor(private readonly maxSamples: number) {}

  start(t0: number): void {
    this.t0 = t0;
    this.lastWriteAt = t0;
  }

  /** Ends a stall interval at now and starts the next one. */
  noteStall(now: number): void {
    const gap = now - this.lastWriteAt;
    if (gap > this.longestStall) {
      this.longestStall = gap;
      this.longestStallStart = this.lastWriteAt - this.t0;
    }
    this.lastWriteAt = now;
  }

  /** Starts a stall interval at now without ending one (time paused is no stall). */
  restartStallClock(now: number): void {
    this.lastWriteAt = now;
  }

  started(op: OpKind): void {
    this.opsStarted++;
    this.opsByKind[op]++;
  }

  succeeded(write: boolean, latency: number, scheduledAt: number): void {
    this.latencies.push(latency);
    if (latency >= SLOW_OP_MS) this.slowOps.push({ at: scheduledAt, ms: latency });
    this.okOps++;
    if (write) {
      this.writeLatencies.push(latency);
      this.okWrites++;
    }
  }

  anomaly(op: OpKind, id: string, message: string, now: number): void {
    this.anomalies++;
    if (this.anomalySamples.length < this.maxSamples) this.anomalySamples.push({ op, id, message, at: now - this.t0 });
  }

  failed(op: OpKind, write: boolean, latency: number, c: Classified, now: number): void {
    this.latencies.push(latency);
    if (write) this.writeLatencies.push(latency);
    this.errors++;
    this.errorsByKey[c.key] = (this.errorsByKey[c.key] ?? 0) + 1;
    if (this.errorSamples.length < this.maxSamples) {
      this.errorSamples.push({ op, key: c.key, code: c.code, errno: c.errno, message: c.message, definite: c.definite, at: now - this.t0 });
    }
    if (!c.definite) this.unknownOutcomes++;
  }

  readMismatch(op: OpKind, id: string, message: string): void {
    this.readMismatches++;
    if (this.readMismatchSamples.length < this.maxSamples) this.readMismatchSamples.push({ op, id, message, at: performance.now() - this.t0 });
  }

  get writesAcknowledged(): number {
    return this.okWrites;
  }

  snapshot(durationMs: number, targetRate: number, backlogAtStop: number): WorkloadStats {
    const secs = durationMs / 1000 || 1;
    const writeLatency = summarize(this.writeLatencies);
    return {
      durationMs,
      targetRate,
      ops: this.opsStarted,
      okOps: this.okOps,
      opsByKind: { ...this.opsByKind },
      errors: this.errors,
      errorsByKey: { ...this.errorsByKey },
      errorSamples: [...this.errorSamples],
      unknownOutcomes: this.unknownOutcomes,
      anomalies: this.anomalies,
      anomalySamples: [...this.anomalySamples],
      readMismatches: this.readMismatches,
      readMismatchSamples: [...this.readMismatchSamples],
      latency: summarize(this.latencies),
      writeLatency,
      longestWriteStallMs: this.longestStall,
      longestWriteStallStart: this.longestStallStart,
      maxWriteLatencyMs: writeLatency.max,
      writesPerSec: this.okWrites / secs,
      opsPerSec: this.latencies.length / secs,
      backlogAtStop,
      slowOps: [...this.slowOps],
    };
  }
}
