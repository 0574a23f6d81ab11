// The deferred index build: the shadow's secondary indexes, built after the copy
// (where the dialect can) while the stream keeps being applied.

import type { CopyPlan, DialectSession } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';
import type { EventPump } from './event-pump.js';
import { whileApplying } from './cutover-checks.js';

export interface IndexBuildSteps {
  pump: EventPump;
  controls: JobControls;
  jobId: string;
  log: Logger;
  /** Records that the job is now in the index build (its checkpoint, saved at once). */
  enterPhase(): Promise<void>;
  /** Runs the build as the job's building-indexes phase, again after a transient failure. */
  run<T>(work: () => Promise<T>): Promise<T>;
}

export async function buildDeferredIndexes(session: DialectSession, plan: CopyPlan, steps: IndexBuildSteps): Promise<void> {
  const finishShadow = session.finishShadow?.bind(session);
  if (!finishShadow) return;
  // The last chunks read rows ahead of the stream: until the changes they already show
  // are applied, the shadow can hold a unique value twice (the new row of a swap next to
  // the old row not yet updated), and a deferred UNIQUE built now would fail as if the
  // data were not unique. After this drain no row in the shadow is ahead of the stream
  // (the applier completes a partial image only with the values it lacks, unchanged
  // large ones; docs/ARCHITECTURE.md, "Partial key changes").
  await steps.pump.applyUntilNow(`indexes-${steps.jobId}`, () => steps.controls.throwIfAborted());
  const started = Date.now();
  await steps.enterPhase();
  // A build interrupted by a lost connection left an invalid index: finishShadow builds it again.
  const shadow = await steps.run(() => whileApplying(steps.pump, steps.controls, (signal) => finishShadow(plan.shadow.ref, { signal })));
  if (shadow.indexes.length !== plan.shadow.indexes.length) {
    steps.log.info({ indexes: shadow.indexes.length - plan.shadow.indexes.length, seconds: (Date.now() - started) / 1000 }, "built the new table's secondary indexes");
  }
}
