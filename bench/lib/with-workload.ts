// Run something (a migration, a baseline copy) while the application-like
// workload runs, and return both its result and the workload's stats.

import { performance } from 'node:perf_hooks';
import { startWorkload, type Workload, type WorkloadOptions, type WorkloadStats } from '../../test/support/workload/index.js';
import { compareWithModel, type ModelCompareResult } from '../../test/support/compare.js';

export interface RunWithWorkloadOptions extends WorkloadOptions {
  /** Load before fn starts (default 1000 ms). */
  warmupMs?: number;
  /** Load after fn ends (default 500 ms). */
  cooldownMs?: number;
  /** After stopping, compare the table with the model (default false). */
  verify?: boolean;
}

export interface RunWithWorkloadResult<T> {
  result: T;
  /** fn's wall time, ms. */
  wallMs: number;
  /** Workload stats over warmup + fn + cooldown. */
  stats: WorkloadStats;
  verify?: ModelCompareResult;
}

export async function runWithWorkload<T>(options: RunWithWorkloadOptions, fn: (workload: Workload) => Promise<T>): Promise<RunWithWorkloadResult<T>> {
  const w = await startWorkload(options);
  let result: T;
  let wallMs: number;
  try {
    await sleep(options.warmupMs ?? 1000);
    const t0 = performance.now();
    result = await fn(w);
    wallMs = performance.now() - t0;
    await sleep(options.cooldownMs ?? 500);
  } catch (err) {
    await w.stop().catch(() => undefined);
    throw err;
  }
  const stats = await w.stop();
  const verify = options.verify ? await compareWithModel(options.url, options.table, w.model) : undefined;
  return { result, wallMs, stats, verify };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
