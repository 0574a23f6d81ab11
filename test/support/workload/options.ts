import type { WorkloadModel } from './model.js';
import type { OpMix } from './ops/mix.js';

export interface WorkloadOptions {
  url: string;
  table: string;
  /** The model of the table as it is now; the workload keeps it up to date. */
  model: WorkloadModel;
  /** Target operations per second, scheduled open-loop (default 300). */
  rate?: number;
  /** Connections (default 8). */
  connections?: number;
  /** Relative weights (default update 50, insert 30, delete 10, select 10). */
  mix?: Partial<OpMix>;
  /** Share of updates that change the primary key: UPDATE ... SET id = newId (default 0.1). */
  pkChangeShare?: number;
  /** Share of inserts (and of PK-change targets) that reuse a deleted id instead of a fresh high one (default 0.3). */
  reuseShare?: number;
  /** First fresh id for inserts (default 1e12; raised above the model's max id). */
  highIdStart?: number;
  /** Client-side timeout of one statement; on expiry the outcome is unknown and the connection is replaced (default 30 s). */
  opTimeoutMs?: number;
  /** PRNG seed, for reproducible runs (default: random). */
  seed?: number;
  /** How many error / anomaly / mismatch samples to keep (default 20). */
  maxSamples?: number;
}

export type ResolvedOptions = Required<Omit<WorkloadOptions, 'mix' | 'seed'>> & { mix: OpMix };

/** The options with their defaults filled in. */
export function resolveOptions(options: WorkloadOptions): ResolvedOptions {
  const mix = { update: 50, insert: 30, delete: 10, select: 10, ...options.mix };
  return {
    url: options.url,
    table: options.table,
    model: options.model,
    rate: options.rate ?? 300,
    connections: options.connections ?? 8,
    mix,
    pkChangeShare: options.pkChangeShare ?? 0.1,
    reuseShare: options.reuseShare ?? 0.3,
    highIdStart: options.highIdStart ?? 1e12,
    opTimeoutMs: options.opTimeoutMs ?? 30_000,
    maxSamples: options.maxSamples ?? 20,
  };
}
