// The throttling flags `alter` and `migrate` share, and how they become the
// throttler's configuration (src/control/throttle-signals.ts). `alter` adds
// --max-slot-lag to the same group; a migration's backfill has no slot.

import type { Argv } from 'yargs';
import type { LiveThrottleSettings, ThrottleConfig } from '../control/throttle-signals.js';
import { parseLoadThresholds } from '../control/throttler.js';
import { UsageError } from '../util/errors.js';

export const THROTTLE_GROUP = 'Throttling:';

export interface ThrottleWording {
  /** What pauses, e.g. "the copy" or "backfills and engine copies". */
  pauses: string;
  /** What crossing --critical-load does. */
  critical: string;
}

export function withThrottleOptions<T>(y: Argv<T>, words: ThrottleWording) {
  return y
    .group(['throttle-flag-file', 'throttle-query', 'max-load', 'critical-load', 'critical-load-hibernate', 'throttle-replicas', 'max-lag', 'heartbeat-interval'], THROTTLE_GROUP)
    .option('throttle-flag-file', { type: 'string', describe: `pause ${words.pauses} while this file exists` })
    .option('throttle-query', { type: 'string', describe: `pause ${words.pauses} while this query returns a value > 0` })
    .option('max-load', { type: 'string', describe: `pause ${words.pauses} while a status value reaches a threshold, e.g. Threads_running=25 (PostgreSQL: active_backends=20)` })
    .option('critical-load', { type: 'string', describe: `${words.critical} when a threshold is crossed twice in a row` })
    .option('critical-load-hibernate', { type: 'number', describe: 'instead of stopping on critical load, pause everything for this many seconds' })
    .option('throttle-replicas', { type: 'string', describe: `comma-separated replica URLs whose lag throttles ${words.pauses}` })
    .option('max-lag', { type: 'number', default: 1.5, describe: `pause ${words.pauses} while a replica is more than this many seconds behind` })
    .option('heartbeat-interval', { type: 'number', default: 100, describe: 'milliseconds between heartbeats written for replica lag' });
}

/** The parsed flags withThrottleOptions adds. */
export interface ThrottleArgs {
  throttleFlagFile?: string;
  throttleQuery?: string;
  maxLoad?: string;
  criticalLoad?: string;
  criticalLoadHibernate?: number;
  throttleReplicas?: string;
  maxLag: number;
  heartbeatInterval: number;
}

function positive(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new UsageError(`--${name} must be a positive number (got ${v})`);
}

function thresholds(spec: string | undefined, flag: string): Map<string, number> {
  try {
    return parseLoadThresholds(spec, flag);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Checks the throttling flags and turns them into the throttler's fixed config and its live (changeable) settings. */
export function throttleFromArgs(args: ThrottleArgs): { config: ThrottleConfig; live: LiveThrottleSettings } {
  positive('max-lag', args.maxLag);
  positive('heartbeat-interval', args.heartbeatInterval);
  positive('critical-load-hibernate', args.criticalLoadHibernate);
  return {
    config: {
      flagFile: args.throttleFlagFile,
      query: args.throttleQuery,
      criticalLoad: thresholds(args.criticalLoad, '--critical-load'),
      criticalHibernateSeconds: args.criticalLoadHibernate,
      replicaUrls: args.throttleReplicas ? args.throttleReplicas.split(',').map((u) => u.trim()).filter(Boolean) : [],
      heartbeatIntervalMs: args.heartbeatInterval,
    },
    live: { maxLagSeconds: args.maxLag, maxLoad: thresholds(args.maxLoad, '--max-load') },
  };
}
