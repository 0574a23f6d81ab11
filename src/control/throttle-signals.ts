// The throttle signals an operator can configure, built from flags. Each is a
// small ThrottleSignal; the database-facing ones read through the dialect's
// probes, so this file holds the policy (thresholds) and no SQL.

import { existsSync } from 'node:fs';
import { crossedThreshold, Throttler, type CriticalSignal, type ThrottleSignal } from './throttler.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from './job-controls.js';
import type { LoadProbes } from '../dialects/dialect.js';
import { redactUrl } from '../util/connection-url.js';

/** Settings an operator may change while the job runs (`ctl set ...`). */
export interface LiveThrottleSettings {
  maxLagSeconds: number;
  maxLoad: Map<string, number>;
  /** PostgreSQL: WAL bytes the job's slot may hold back; undefined = no limit. */
  maxSlotLagBytes?: number;
  /**
   * PostgreSQL: seconds the copy may read at the stream's snapshot (--copy-snapshot-max,
   * copy-loop.ts); lowering it live ends that phase before the next chunk. Not a throttle
   * signal, but set the same way, and the slot lag above also ends the phase. Undefined:
   * DEFAULT_COPY_SNAPSHOT_MAX_SECONDS.
   */
  copySnapshotMaxSeconds?: number;
  /**
   * The copy rests this many times as long as each chunk (or round) took, before the next
   * (--nice-ratio): 0.5 after a 200 ms chunk is a 100 ms rest. It leaves the application
   * a share of the server at the cost of a longer copy. Undefined or 0: no rest.
   */
  niceRatio?: number;
}

export interface ThrottleConfig {
  flagFile?: string;
  query?: string;
  criticalLoad: Map<string, number>;
  criticalHibernateSeconds?: number;
  replicaUrls: string[];
  heartbeatIntervalMs: number;
}

export function manualSignal(controls: JobControls): ThrottleSignal {
  return { name: 'manual', check: async () => (controls.manualThrottle ? 'ctl throttle' : null) };
}

export function flagFileSignal(path: string): ThrottleSignal {
  return { name: 'flag-file', check: async () => (existsSync(path) ? `${path} exists` : null) };
}

export function querySignal(probes: LoadProbes, sql: string): ThrottleSignal {
  return {
    name: 'throttle-query',
    check: async () => {
      const v = await probes.throttleQueryValue(sql);
      return v > 0 ? `--throttle-query returned ${v}` : null;
    },
  };
}

export function maxLoadSignal(probes: LoadProbes, settings: LiveThrottleSettings): ThrottleSignal {
  return {
    name: 'max-load',
    check: async () => {
      if (settings.maxLoad.size === 0) return null;
      return crossedThreshold(await probes.readStatus([...settings.maxLoad.keys()]), settings.maxLoad);
    },
  };
}

export function criticalLoadSignal(probes: LoadProbes, thresholds: Map<string, number>): CriticalSignal {
  return { name: 'critical-load', check: async () => crossedThreshold(await probes.readStatus([...thresholds.keys()]), thresholds) };
}

/** Replica lag from the heartbeat the job writes on the primary; remembers the largest value for metrics. */
export class ReplicaLagSignal implements ThrottleSignal {
  readonly name = 'replica-lag';
  lastLagSeconds: number | null = null;
  /** The last lag read from each replica, by URL without credentials (the dashboard charts each). */
  readonly lags = new Map<string, number>();
  constructor(
    private readonly probes: LoadProbes,
    private readonly replicaUrls: string[],
    private readonly settings: LiveThrottleSettings,
  ) {}

  async check(): Promise<string | null> {
    let worst: { url: string; lag: number } | null = null;
    try {
      for (const url of this.replicaUrls) {
        const lag = await this.probes.replicaLagSeconds(url);
        this.lags.set(redactUrl(url), lag);
        if (!worst || lag > worst.lag) worst = { url, lag };
      }
    } catch (err) {
      // Status must not keep showing a lag that can no longer be read.
      this.lastLagSeconds = null;
      this.lags.clear();
      throw err;
    }
    this.lastLagSeconds = worst?.lag ?? null;
    if (worst && worst.lag > this.settings.maxLagSeconds) {
      return `replica ${redactUrl(worst.url)} is ${worst.lag.toFixed(2)}s behind (max ${this.settings.maxLagSeconds}s)`;
    }
    return null;
  }
}

export function slotLagSignal(probes: LoadProbes, settings: LiveThrottleSettings): ThrottleSignal {
  return {
    name: 'slot-lag',
    check: async () => {
      const max = settings.maxSlotLagBytes;
      if (max === undefined) return null;
      const bytes = await probes.streamRetainedBytes();
      return bytes !== null && bytes > max ? `the job's replication slot holds ${bytes} bytes of WAL (max ${max})` : null;
    },
  };
}

export function needsProbes(config: Partial<ThrottleConfig>, live: LiveThrottleSettings): boolean {
  return Boolean(config.query || live.maxLoad.size || config.criticalLoad?.size || config.replicaUrls?.length || live.maxSlotLagBytes !== undefined);
}

export interface JobThrottle {
  throttler: Throttler;
  replicaLag: ReplicaLagSignal | null;
  stop(): Promise<void>;
}

/** Builds and starts the throttler for one job, with the heartbeat replica lag needs. */
export function createJobThrottle(args: {
  config: Partial<ThrottleConfig>;
  live: LiveThrottleSettings;
  controls: JobControls;
  probes: LoadProbes | undefined;
  log: Logger;
  /** What critical load (crossed twice in a row, no hibernation) does; default: abort the job. */
  onCritical?: (reason: string) => void;
}): JobThrottle {
  const { config, live, controls, probes, log } = args;
  const signals: ThrottleSignal[] = [manualSignal(controls)];
  const critical: CriticalSignal[] = [];
  if (config.flagFile) signals.push(flagFileSignal(config.flagFile));
  let replicaLag: ReplicaLagSignal | null = null;
  let heartbeat: NodeJS.Timeout | null = null;
  if (probes) {
    if (config.query) signals.push(querySignal(probes, config.query));
    signals.push(maxLoadSignal(probes, live));
    if (config.replicaUrls?.length) {
      replicaLag = new ReplicaLagSignal(probes, config.replicaUrls, live);
      signals.push(replicaLag);
      const beat = () => void probes.writeHeartbeat().catch((e: Error) => log.warn({ err: e.message }, 'heartbeat write failed'));
      beat();
      heartbeat = setInterval(beat, config.heartbeatIntervalMs ?? 100);
      heartbeat.unref();
    }
    signals.push(slotLagSignal(probes, live));
    if (config.criticalLoad?.size) critical.push(criticalLoadSignal(probes, config.criticalLoad));
  }
  const throttler = new Throttler({
    signals,
    critical,
    criticalHibernateSeconds: config.criticalHibernateSeconds,
    log,
    onCritical: args.onCritical ?? ((reason) => controls.abort(reason)),
  });
  throttler.start();
  return {
    throttler,
    replicaLag,
    async stop() {
      throttler.stop();
      if (heartbeat) clearInterval(heartbeat);
      await probes?.close().catch(() => undefined);
    },
  };
}
