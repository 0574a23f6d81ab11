// Sends one ALTER through the online engine (AlterJob), the way `shadowshift
// alter --execute` does, and waits for it to finish.

import { AlterJob, type AlterResult } from '../engine/job.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import { PreflightError } from '../util/errors.js';

export interface EngineSettings {
  chunkTimeMs: number;
  cutoverLockTimeoutMs: number;
  cutoverRetries: number;
  dropOldTable: boolean;
  throttleFlagFile?: string;
  /** Called with the job once it exists (the CLI attaches signal handlers); returns a detach function. */
  attach?: (job: AlterJob) => () => void;
}

export const DEFAULT_ENGINE_SETTINGS: EngineSettings = {
  chunkTimeMs: 500,
  cutoverLockTimeoutMs: 3000,
  cutoverRetries: 10,
  dropOldTable: false,
};

export type OnlineAlter = (table: string, alter: string) => Promise<AlterResult>;

export function engineAlter(connection: ConnectionConfig, settings: EngineSettings, log: Logger): OnlineAlter {
  return async (table, alter) => {
    const job = new AlterJob({
      connection,
      table,
      alter,
      chunkTimeMs: settings.chunkTimeMs,
      cutoverLockTimeoutMs: settings.cutoverLockTimeoutMs,
      cutoverRetries: settings.cutoverRetries,
      dropOldTable: settings.dropOldTable,
      log,
      throttle: settings.throttleFlagFile ? { flagFile: settings.throttleFlagFile } : undefined,
    });
    const detach = settings.attach?.(job);
    try {
      const report = await job.prepare();
      if (!report.ok) throw new PreflightError(report.checks.filter((c) => !c.ok).map((c) => ({ check: c.check, message: c.message })));
      return await job.execute(report);
    } finally {
      detach?.();
      await job.close();
    }
  };
}
