// The job's checksum runs: before the cut-over, and again every --checksum-interval
// while postponed. Their totals (chunks compared, repaired) add up over the whole job.

import type { CopyPlan, DialectSession } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';
import type { EventPump } from './event-pump.js';
import type { AlterJobOptions } from './job-options.js';
import { catchUp } from './cutover-loop.js';
import { ChecksumTally, verifyShadow } from './verifier.js';

export class ChecksumRuns {
  readonly tally = new ChecksumTally();
  /** When the last run ended (0: none yet). */
  lastAt = 0;

  constructor(
    private readonly o: {
      jobId: string;
      options: Pick<AlterJobOptions, 'checksum' | 'cutoverLockTimeoutMs' | 'testHooks'>;
      controls: JobControls;
      log: Logger;
      /** Runs a checksum as the job's checksum phase, again after a transient failure (it changes nothing but the chunks it repairs). */
      run(work: () => Promise<unknown>): Promise<unknown>;
    },
  ) {}

  async verify(session: DialectSession, plan: CopyPlan, pump: EventPump, chunkRows: number): Promise<void> {
    const { options, controls } = this.o;
    if (options.checksum === false) return;
    await this.o.run(() => verifyShadow({
      checksummer: session.checksummer,
      copier: session.copier,
      plan,
      chunkSize: Math.max(1000, chunkRows * 4),
      lockTimeoutMs: options.cutoverLockTimeoutMs,
      drainUnderLock: () => pump.applyUntilMarker(`checksum-${this.o.jobId}-${Date.now()}`, options.cutoverLockTimeoutMs, { underLock: true }),
      between: () => catchUp(pump, controls),
      afterCompare: options.testHooks?.checksumCompared,
      log: this.o.log,
      tally: this.tally,
    }));
    this.lastAt = Date.now();
  }
}
