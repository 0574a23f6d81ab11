// Sends one ALTER through the online engine (AlterJob), the way `shadowshift
// alter --execute` does, and waits for it to finish.

import { AlterJob, type AlterResult } from '../engine/job.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import { PreflightError } from '../util/errors.js';
import { alterJobOptions, type EngineSettings } from '../engine/settings.js';
import { openDialect } from '../dialects/open-dialect.js';

export type OnlineAlter = (table: string, alter: string) => Promise<AlterResult>;

/** `migrate down` of a migration without a down phase whose ALTERs went through the engine with --revertible. */
export interface OnlineRevert {
  /** The ALTER the table's revert point undoes (its clauses, as the engine ran them), or null when it has none. */
  pointOf(table: string): Promise<string | null>;
  /** Runs `shadowshift revert` of the table. */
  run(table: string): Promise<AlterResult>;
}

/** How a statement's `ran` says what the engine did; repairs are shouted, they mean an engine bug. */
export function describeEngineRun(r: AlterResult): string {
  const checksum = !r.checksum.ran
    ? 'checksum not run'
    : r.repairedChunks
      ? `checksum REPAIRED ${r.repairedChunks} of ${r.checksum.chunksCompared} chunk(s) (the copy or the stream missed a change: report it with the log)`
      : `checksum: ${r.checksum.chunksCompared} chunk(s), none repaired`;
  return `online engine: ${r.rowsCopied} rows copied, ${r.eventsApplied} changes applied, ${checksum}`;
}

/** The engine's revert (RevertSupport), with the run's settings; each call opens its own session. */
export function engineRevert(connection: ConnectionConfig, settings: EngineSettings, log: Logger, attach?: (job: AlterJob) => () => void): OnlineRevert {
  return {
    async pointOf(table) {
      const session = await openDialect(connection, log);
      try {
        const info = await session.inspectTable(session.resolveTable(table));
        return info ? ((await session.revert?.points.load(info.ref))?.alter ?? null) : null;
      } finally {
        await session.close();
      }
    },
    run(table) {
      return runJob(new AlterJob(alterJobOptions(settings, { connection, table, alter: '', revert: true, log })), attach);
    },
  };
}

/**
 * `attach` is called with each job once it exists (the CLI installs its signal
 * handlers) and returns a detach function.
 */
export function engineAlter(connection: ConnectionConfig, settings: EngineSettings, log: Logger, attach?: (job: AlterJob) => () => void): OnlineAlter {
  // A run of the same step killed earlier (SIGKILL, OOM, a lost host) left its checkpoint:
  // this run continues it rather than being refused at preflight with "use --resume".
  const resumable = { ...settings, resume: { ...settings.resume, resumeIfSameAlter: true } };
  return async (table, alter) => {
    return runJob(new AlterJob(alterJobOptions(resumable, { connection, table, alter, log })), attach);
  };
}

/** Plans and runs one engine job, refusing it as `alter` does when a check failed; closes it whatever happens. */
async function runJob(job: AlterJob, attach?: (job: AlterJob) => () => void): Promise<AlterResult> {
  const detach = attach?.(job);
  try {
    const report = await job.prepare();
    if (!report.ok) throw new PreflightError(report.checks.filter((c) => !c.ok).map((c) => ({ check: c.check, message: c.message })));
    return await job.execute(report);
  } finally {
    detach?.();
    await job.close();
  }
}
