// One whole job (prepare + execute, as `alter --execute` runs it) while a small write
// workload runs against the table: from the start of the copy through a postponed
// cut-over, so writes reach the shadow through both the copy and the stream. The writes
// stop before the cut-over is released, so afterwards the backup (the original) holds
// exactly the rows the application wrote, and the new table must hold the same.

import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AlterResult } from '../../src/engine/job.js';
import { newJob, waitUntil, type TestAlterOptions } from './alter.js';

export interface UnderWrites {
  result: AlterResult;
  /** Writes done in all, and of those while the job was copying. */
  writes: number;
  writesWhileCopying: number;
}

/**
 * Runs the ALTER under `write(i)` called in a loop (i = 0, 1, ...). Waits for at least
 * `writesWhilePostponed` writes once the job has caught up (they go through the stream),
 * then stops the writes and releases the cut-over. Throws if the job or a write fails.
 */
export async function alterUnderWrites(
  url: string,
  table: string,
  alter: string,
  write: (i: number) => Promise<void>,
  options: TestAlterOptions & { writesWhilePostponed?: number } = {},
): Promise<UnderWrites> {
  const { writesWhilePostponed = 20, ...jobOptions } = options;
  const dir = mkdtempSync(join(tmpdir(), 'ss-under-writes-'));
  const flag = join(dir, 'postpone');
  writeFileSync(flag, '');
  const job = newJob(url, table, alter, { postponeCutoverFlagFile: flag, ...jobOptions });
  let stop = false;
  let writes = 0;
  let writesWhileCopying = 0;
  let writeError: unknown = null;
  try {
    const report = await job.prepare();
    if (!report.ok) throw new Error(`preflight refused: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
    let settled = false;
    const running = job.execute(report).finally(() => (settled = true));
    running.catch(() => undefined);
    const writer = (async () => {
      while (!stop) {
        try {
          await write(writes);
        } catch (e) {
          writeError = e;
          return;
        }
        writes++;
        if (job.status().state === 'copying') writesWhileCopying++;
      }
    })();
    try {
      await waitUntil(() => settled || writeError !== null || job.status().state === 'postponed', 'the job to catch up and postpone', 120_000);
      if (!settled && writeError === null) {
        const target = writes + writesWhilePostponed;
        await waitUntil(() => settled || writeError !== null || writes >= target, 'writes while postponed', 120_000);
      }
    } finally {
      stop = true;
      await writer;
    }
    if (writeError) throw writeError;
    rmSync(flag, { force: true });
    const result = await running;
    return { result, writes, writesWhileCopying };
  } finally {
    stop = true;
    await job.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
