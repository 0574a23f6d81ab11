// Runs the engine in-process, the way the CLI does, for tests that need to
// watch or steer a job while it runs.

import { pino } from 'pino';
import { AlterJob, type AlterJobOptions, type AlterResult } from '../../src/engine/job.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger, createLogger, type Logger } from '../../src/util/logger.js';

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

/**
 * prepare() + execute(), closing the job whatever happens. A job that repaired a
 * chunk fails the test: the tests that check data require zero repairs (invariant
 * 10); the ones that damage the shadow on purpose run the job themselves.
 */
export async function runAlter(url: string, table: string, alter: string, options: TestAlterOptions = {}): Promise<AlterResult> {
  const job = newJob(url, table, alter, options);
  try {
    const report = await job.prepare();
    const result = await job.execute(report);
    if (result.repairedChunks !== 0) {
      throw new Error(`the checksum repaired ${result.repairedChunks} chunk(s) of ${table}: the copy or the stream lost a change (run with SHADOWSHIFT_TEST_LOG=warn to see the ranges)`);
    }
    return result;
  } finally {
    await job.close();
  }
}

/** `shadowshift revert` of the table's last revertible ALTER, as runAlter runs a job (zero repairs). */
export function runRevert(url: string, table: string, options: TestAlterOptions = {}): Promise<AlterResult> {
  return runAlter(url, table, '', { ...options, revert: true });
}

/** A logger that keeps every line (as parsed JSON) for the test to read. */
export function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

export async function waitUntil(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
