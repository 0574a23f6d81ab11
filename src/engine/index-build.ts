// The deferred index build: the shadow's secondary indexes, built after the copy
// (where the dialect can) while the stream keeps being applied.

import type { CopyPlan, DialectSession } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';
import type { EventPump } from './event-pump.js';
import { whileApplying } from './cutover-checks.js';
import { DataLossError } from '../util/errors.js';

export interface IndexBuildSteps {
  /**
   * The copy read every row at the stream's start (copy-loop.ts): the shadow is the
   * original as of one moment, no row ahead of the stream, so the build need not wait
   * for the stream to be applied first.
   */
  shadowAtStreamStart: boolean;
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
  const drain = () => steps.pump.applyUntilNow(`indexes-${steps.jobId}`, () => steps.controls.throwIfAborted());
  // The last chunks of a copy under row locks read rows ahead of the stream: until the
  // changes they already show are applied, the shadow can hold a unique value twice (the
  // new row of a swap next to the old row not yet updated), and a deferred UNIQUE built
  // now would fail as if the data were not unique. After this drain no row in the shadow
  // is ahead of the stream (the applier completes a partial image only with the values
  // it lacks, unchanged large ones; docs/ARCHITECTURE.md, "Partial key changes").
  // A copy at the stream's start has no such rows: the build starts at once and overlaps
  // the stream's catch-up (on PostgreSQL the walsender is still decoding the copy's own
  // WAL then, seconds on 1M rows: bench/RESULTS.md).
  if (!steps.shadowAtStreamStart) await drain();
  const started = Date.now();
  await steps.enterPhase();
  // A build interrupted by a lost connection left an invalid index: finishShadow builds it again.
  const build = () => steps.run(() => whileApplying(steps.pump, steps.controls, (signal) => finishShadow(plan.shadow.ref, { signal })));
  let shadow;
  try {
    shadow = await build();
  } catch (err) {
    if (!(err instanceof DataLossError) || !steps.shadowAtStreamStart) throw err;
    // The rows as of the job's start break a new unique or exclusion constraint; the
    // changes made since may have removed the duplicates, as the drain above would have
    // before the build. The failed index was dropped: apply them and build again.
    steps.log.info({ reason: err.message }, "a deferred index failed on the rows as of the job's start; building it again once the changes since are applied");
    await drain();
    shadow = await build();
  }
  if (shadow.indexes.length !== plan.shadow.indexes.length) {
    steps.log.info({ indexes: shadow.indexes.length - plan.shadow.indexes.length, seconds: (Date.now() - started) / 1000 }, "built the new table's secondary indexes");
  }
}
