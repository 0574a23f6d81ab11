// Decides whether the copy may run. Signals are polled in the background so the
// copy loop only reads a field; while any signal says so the copy (and backfill)
// writes nothing, but the change stream keeps being applied.

import type { Logger } from '../util/logger.js';

export interface ThrottleSignal {
  /** Short name used in status, logs and metrics labels: manual, flag-file, max-load, replica-lag, ... */
  readonly name: string;
  /** A human reason when the copy must pause, else null. Throwing counts as "pause" (fail safe). */
  check(): Promise<string | null>;
}

export interface CriticalSignal {
  readonly name: string;
  /** A reason when the server is in critical condition, else null. */
  check(): Promise<string | null>;
}

export interface ThrottlerOptions {
  signals: ThrottleSignal[];
  critical?: CriticalSignal[];
  /** Seconds to pause everything when critical load is crossed, instead of aborting. */
  criticalHibernateSeconds?: number;
  pollMs?: number;
  log: Logger;
  /** Called when critical load is crossed twice in a row and no hibernation is configured. */
  onCritical: (reason: string) => void;
}

export class Throttler {
  private current: { signal: string; reason: string } | null = null;
  /** When the current signal began to hold the copy (for status' waitingFor). */
  private currentSince = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The reading in progress, if any. */
  private inFlight: Promise<void> | null = null;
  private firstPoll: Promise<void> | null = null;
  private criticalStrikes = 0;
  private hibernateUntil = 0;
  /** Seconds spent throttled, by signal name, up to the last poll (see secondsThrottled). */
  private readonly secondsBySignal = new Map<string, number>();
  private since = Date.now();

  constructor(private readonly options: ThrottlerOptions) {}

  start(): void {
    if (this.timer) return;
    this.firstPoll = this.poll();
    this.timer = setInterval(() => {
      if (!this.inFlight) void this.poll();
    }, this.options.pollMs ?? 250);
    this.timer.unref();
  }

  /** Resolves once every signal has been read since start(), so work does not begin on an unread throttle. */
  async firstReading(): Promise<void> {
    await this.firstPoll;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The reason the copy is paused, or null. Includes hibernation after critical load. */
  reason(): string | null {
    if (Date.now() < this.hibernateUntil) return `hibernating after critical load until ${new Date(this.hibernateUntil).toISOString()}`;
    return this.current ? `${this.current.signal}: ${this.current.reason}` : null;
  }

  /** The signal holding the copy, its reason and since when; null when none does (hibernation included as `critical-load`). */
  active(): { signal: string; reason: string; since: number } | null {
    if (this.hibernating()) return { signal: 'critical-load', reason: this.reason()!, since: this.hibernateUntil - (this.options.criticalHibernateSeconds ?? 0) * 1000 };
    return this.current ? { ...this.current, since: this.currentSince } : null;
  }

  /** True while even the change stream should rest (critical-load hibernation). */
  hibernating(): boolean {
    return Date.now() < this.hibernateUntil;
  }

  /** Seconds spent throttled by signal name, including the pause in progress. */
  secondsThrottled(): Map<string, number> {
    const out = new Map(this.secondsBySignal);
    if (this.current) out.set(this.current.signal, (out.get(this.current.signal) ?? 0) + (Date.now() - this.since) / 1000);
    return out;
  }

  /**
   * Re-checks now (used after an operator command so it takes effect at once). A reading
   * already under way may have begun before the caller's change: it is waited for, then
   * the signals are read again (or the reading another caller began meanwhile is shared).
   */
  async poll(): Promise<void> {
    if (this.inFlight) await this.inFlight.catch(() => undefined);
    if (!this.inFlight) this.inFlight = this.read().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async read(): Promise<void> {
    await this.checkCritical();
    // Every signal is read each time (not just up to the first that fires), so
    // the lag and load values in status and metrics stay current.
    let next: { signal: string; reason: string } | null = null;
    for (const signal of this.options.signals) {
      let reason: string | null;
      try {
        reason = await signal.check();
      } catch (err) {
        reason = `cannot read it (${(err as Error).message}); pausing to be safe`;
      }
      if (reason && !next) next = { signal: signal.name, reason };
    }
    this.account();
    if (next?.signal !== this.current?.signal || next?.reason !== this.current?.reason) {
      if (next && !this.current) this.options.log.info({ signal: next.signal, reason: next.reason }, `throttling: ${next.signal}`);
      else if (!next && this.current) this.options.log.info({ signal: this.current.signal }, 'throttle released');
      else if (next && this.current && next.signal !== this.current.signal) this.options.log.info({ signal: next.signal, reason: next.reason }, `throttling: ${next.signal}`);
    }
    if (next?.signal !== this.current?.signal) this.currentSince = Date.now();
    this.current = next;
  }

  private account(): void {
    const now = Date.now();
    if (this.current) {
      const key = this.current.signal;
      this.secondsBySignal.set(key, (this.secondsBySignal.get(key) ?? 0) + (now - this.since) / 1000);
    }
    this.since = now;
  }

  private async checkCritical(): Promise<void> {
    const critical = this.options.critical ?? [];
    if (critical.length === 0 || this.hibernating()) return;
    let reason: string | null = null;
    for (const c of critical) {
      reason = await c.check().catch(() => null);
      if (reason) break;
    }
    if (!reason) {
      this.criticalStrikes = 0;
      return;
    }
    this.criticalStrikes++;
    this.options.log.warn({ reason, strikes: this.criticalStrikes }, 'critical load crossed');
    if (this.criticalStrikes < 2) return;
    this.criticalStrikes = 0;
    const hibernate = this.options.criticalHibernateSeconds;
    if (hibernate && hibernate > 0) {
      this.hibernateUntil = Date.now() + hibernate * 1000;
      this.options.log.warn({ seconds: hibernate }, 'critical load twice in a row: hibernating');
    } else {
      this.options.onCritical(`critical load twice in a row: ${reason}`);
    }
  }
}

/** Parses `Threads_running=25,Threads_connected=500` into thresholds; names the bad part. */
export function parseLoadThresholds(spec: string | undefined, flag: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!spec) return out;
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) throw new Error(`${flag}: "${part}" is not NAME=NUMBER (for example ${flag} Threads_running=25)`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** First threshold crossed, as a reason, or null. */
export function crossedThreshold(values: Record<string, number>, thresholds: Map<string, number>): string | null {
  for (const [name, limit] of thresholds) {
    const v = values[name];
    if (v !== undefined && v >= limit) return `${name}=${v} >= ${limit}`;
  }
  return null;
}
