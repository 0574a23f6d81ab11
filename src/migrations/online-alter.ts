// Sends one ALTER through the online engine (AlterJob), the way `shadowshift
// alter --execute` does, and waits for it to finish.

import { AlterJob, type AlterResult } from '../engine/job.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import { PreflightError } from '../util/errors.js';
import type { ThrottleConfig } from '../control/throttle-signals.js';

export interface EngineSettings {
  chunkTimeMs: number;
  cutoverLockTimeoutMs: number;
  cutoverRetries: number;
  dropOldTable: boolean;
  /** The run's throttle signals (flag file, query, critical load, replica lag), as `alter` takes them. */
  throttle?: Partial<ThrottleConfig>;
  /** Replica lag (seconds) above which the copy pauses. */
  maxLagSeconds?: number;
  /** Load thresholds that pause the copy; the map is read live, so a change reaches a running job. */
  maxLoad?: Map<string, number>;
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
      throttle: settings.throttle,
      maxLagSeconds: settings.maxLagSeconds,
      maxLoad: settings.maxLoad,
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
