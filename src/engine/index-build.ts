// The deferred index build: the shadow's secondary indexes, built after the copy
// (where the dialect can) while the stream keeps being applied.

import type { CopyPlan, DialectSession } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';
import type { EventPump } from './event-pump.js';
import { whileApplying } from './cutover-checks.js';

export interface IndexBuildSteps {
  /** Build first, then apply the stream up to now (buildsBeforeDrain); otherwise the other way round. */
  buildFirst: boolean;
  pump: EventPump;
  controls: JobControls;
  jobId: string;
  log: Logger;
  /** Records that the job is now in the index build (its checkpoint, saved at once). */
  enterPhase(): Promise<void>;
  /** Runs the build as the job's building-indexes phase, again after a transient failure. */
  run<T>(work: () => Promise<T>): Promise<T>;
}

/**
 * Whether the deferred indexes can be built before the stream is applied up to now. The
 * last chunks of a copy under row locks read rows ahead of the stream: until the changes
 * they already show are applied, the shadow can hold a unique value twice (the new row of
 * a swap next to the old row not yet updated), and a UNIQUE built then would fail as if
 * the data were not unique (docs/ARCHITECTURE.md, "Partial key changes"). A copy read
 * wholly at the stream's start has no such row: the shadow is the original as of one
 * moment. Then only a constraint the original does not enforce could fail: a new or
 * weakened UNIQUE (CopyPlan.newUniqueIndexes), or an EXCLUDE (whether the original has it
 * is not known here) — the changes since may have removed the rows that break it, and
 * replaying them over the built index could meet duplicates the application created and
 * fixed meanwhile. Those keep the drain first. `preview`: the plan of the ALTER's preview,
 * whose shadow has every index (the real shadow's deferred ones are not built yet);
 * its definitions are PostgreSQL's, the only dialect that defers indexes.
 */
export function buildsBeforeDrain(copiedAtStreamStart: boolean, preview: Pick<CopyPlan, 'newUniqueIndexes' | 'shadow'> | null): boolean {
  if (!copiedAtStreamStart || !preview) return false;
  return preview.newUniqueIndexes.length === 0 && !(preview.shadow.definitions ?? []).some((d) => d.startsWith('constraint EXCLUDE '));
}

export async function buildDeferredIndexes(session: DialectSession, plan: CopyPlan, steps: IndexBuildSteps): Promise<void> {
  const finishShadow = session.finishShadow?.bind(session);
  if (!finishShadow) return;
  // After this drain no row in the shadow is ahead of the stream (the applier completes a
  // partial image only with the values it lacks, unchanged large ones).
  const drain = () => steps.pump.applyUntilNow(`indexes-${steps.jobId}`, () => steps.controls.throwIfAborted());
  if (!steps.buildFirst) await drain();
  else steps.log.info("building the new table's indexes at once, while the changes since the job's start are applied (the copy read the table as of then)");
  const started = Date.now();
  await steps.enterPhase();
  // A build interrupted by a lost connection left an invalid index: finishShadow builds it again.
  const shadow = await steps.run(() => whileApplying(steps.pump, steps.controls, (signal) => finishShadow(plan.shadow.ref, { signal })));
  if (shadow.indexes.length !== plan.shadow.indexes.length) {
    steps.log.info({ indexes: shadow.indexes.length - plan.shadow.indexes.length, seconds: (Date.now() - started) / 1000 }, "built the new table's secondary indexes");
  }
  // On PostgreSQL the walsender may still be decoding the copy's own WAL: caught up here,
  // without a lock, the checksum's drain (under a lock on the original) stays short.
  if (steps.buildFirst) await drain();
}
