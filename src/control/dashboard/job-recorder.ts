// What the dashboard remembers of one engine job over its life: a sample of its status
// every second (bounded, see history-ring.ts), the time spent in each state, the
// throttled intervals with their reasons, each cut-over attempt, and chunk durations.
// It only reads the job's status and what the job's observer tells it.

import type { JobStatus } from '../../engine/job-state.js';
import { HistoryRing, maxOf, meanOf } from './history-ring.js';

export interface RecordedJobSource {
  status(): JobStatus;
  /** Lag per replica (URL without credentials), when replicas are watched. */
  replicaLags?(): Map<string, number>;
}

/** One point of the charts. */
export interface Sample {
  /** ms since the epoch. */
  t: number;
  rowsCopied: number;
  rowsPerSecond: number | null;
  lagSeconds: number | null;
  backlog: number;
  /** Replica name -> lag in seconds. */
  replicaLag: Record<string, number | null>;
  /** Mean chunk duration since the last sample, ms. */
  chunkMs: number | null;
  /** Why the copy was throttled during the point, or null. */
  throttled: string | null;
}

export interface ThrottleInterval {
  from: number;
  /** null while it lasts. */
  to: number | null;
  reason: string;
}

export interface CutoverAttempt {
  at: number;
  result: 'ok' | 'failed';
  lockedMs: number;
}

export interface StateSpan {
  state: string;
  since: number;
}

export const HISTORY_POINTS = 600;
const MAX_INTERVALS = 200;
const MAX_ATTEMPTS = 100;

export function combineSamples(points: Sample[]): Sample {
  const last = points[points.length - 1]!;
  const names = new Set(points.flatMap((p) => Object.keys(p.replicaLag)));
  const replicaLag: Record<string, number | null> = {};
  for (const name of names) replicaLag[name] = meanOf(points.map((p) => p.replicaLag[name]));
  return {
    t: last.t,
    rowsCopied: last.rowsCopied,
    rowsPerSecond: meanOf(points.map((p) => p.rowsPerSecond)),
    lagSeconds: maxOf(points.map((p) => p.lagSeconds)),
    backlog: maxOf(points.map((p) => p.backlog)) ?? 0,
    replicaLag,
    chunkMs: meanOf(points.map((p) => p.chunkMs)),
    throttled: points.find((p) => p.throttled)?.throttled ?? null,
  };
}

export class JobRecorder {
  readonly history = new HistoryRing<Sample>(HISTORY_POINTS, combineSamples);
  readonly startedAt: number;
  private states: StateSpan[] = [];
  private throttles: ThrottleInterval[] = [];
  private attempts: CutoverAttempt[] = [];
  private chunkMs: number[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly source: RecordedJobSource,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** Samples every `intervalMs` until stop(). */
  start(intervalMs = 1000): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  chunkCopied(seconds: number): void {
    if (this.chunkMs.length < 10_000) this.chunkMs.push(seconds * 1000);
  }

  cutoverAttempt(result: 'ok' | 'failed', blockedSeconds: number): void {
    this.attempts.push({ at: this.now(), result, lockedMs: Math.round(blockedSeconds * 1000) });
    if (this.attempts.length > MAX_ATTEMPTS) this.attempts.shift();
  }

  /** Reads the job's status once: a point of the charts, and any change of state or throttle. */
  sample(): JobStatus {
    const s = this.source.status();
    const t = this.now();
    this.noteState(s.state, t);
    this.noteThrottle(s.throttled, t);
    const replicaLag: Record<string, number | null> = {};
    for (const [name, lag] of this.source.replicaLags?.() ?? []) replicaLag[name] = lag;
    this.history.push({
      t,
      rowsCopied: s.rowsCopied,
      rowsPerSecond: s.rowsPerSecond,
      lagSeconds: s.lagSeconds,
      backlog: s.backlog,
      replicaLag,
      chunkMs: meanOf(this.chunkMs),
      throttled: s.throttled,
    });
    this.chunkMs = [];
    return s;
  }

  noteState(state: string, t = this.now()): void {
    if (this.states[this.states.length - 1]?.state !== state) this.states.push({ state, since: t });
  }

  private noteThrottle(reason: string | null, t: number): void {
    const open = this.throttles[this.throttles.length - 1];
    if (open && open.to === null && open.reason !== reason) open.to = t;
    if (reason && (!open || open.to !== null || open.reason !== reason)) {
      this.throttles.push({ from: t, to: null, reason });
      if (this.throttles.length > MAX_INTERVALS) this.throttles.shift();
    }
  }

  /** Seconds spent in each state so far, in the order first entered. */
  stateSeconds(t = this.now()): Array<{ state: string; seconds: number }> {
    const total = new Map<string, number>();
    this.states.forEach((span, i) => {
      const end = this.states[i + 1]?.since ?? t;
      total.set(span.state, (total.get(span.state) ?? 0) + (end - span.since) / 1000);
    });
    return [...total].map(([state, seconds]) => ({ state, seconds: Math.round(seconds * 10) / 10 }));
  }

  view(t = this.now()) {
    return {
      startedAt: this.startedAt,
      resolutionSeconds: this.history.resolution,
      states: this.stateSeconds(t),
      stateTimeline: [...this.states],
      history: this.history.snapshot(),
      throttles: this.throttles.map((i) => ({ ...i })),
      cutoverAttempts: [...this.attempts],
    };
  }
}
