// Runs the engine in-process, the way the CLI does, for tests that need to
// watch or steer a job while it runs.

import { AlterJob, type AlterJobOptions, type AlterResult } from '../../src/engine/job.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger, createLogger } from '../../src/util/logger.js';

export type TestAlterOptions = Partial<Omit<AlterJobOptions, 'connection' | 'table' | 'alter'>>;

export function newJob(url: string, table: string, alter: string, options: TestAlterOptions = {}): AlterJob {
  return new AlterJob({
    connection: parseConnectionUrl(url),
    table,
    alter,
    chunkTimeMs: 200,
    cutoverLockTimeoutMs: 3000,
    cutoverRetries: 5,
    dropOldTable: false,
    log: process.env.SHADOWSHIFT_TEST_LOG ? createLogger({ level: process.env.SHADOWSHIFT_TEST_LOG, pretty: false }) : silentLogger(),
    ...options,
  });
}

/** prepare() + execute(), closing the job whatever happens. */
export async function runAlter(url: string, table: string, alter: string, options: TestAlterOptions = {}): Promise<AlterResult> {
  const job = newJob(url, table, alter, options);
  try {
    const report = await job.prepare();
    return await job.execute(report);
  } finally {
    await job.close();
  }
}

export async function waitUntil(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
