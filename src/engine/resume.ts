// Resuming from any phase (invariant 8). A checkpoint records the phase the job was in;
// the copy's watermark and the stream's position say the rest. Two things a resume must
// settle first, before it touches anything:
//  - the stopped run may still be running statements on the server: a SIGKILLed client's
//    session runs its last statement to the end (a chunk holding row locks, an index build
//    waiting for snapshots, a RENAME or the cut-over's LOCK waiting for its lock). They are
//    ended as soon as the checkpoint is read, before the preflight reads the table (a queued
//    lock request would hold those reads up for its whole lock timeout), with the job lock
//    taken first, so no live job owns them;
//  - a cut-over that was interrupted either swapped the tables or did not. Swapped: the
//    shadow's name is gone and the backup holds the old table; the job finishes (removes its
//    working artefacts) instead of copying into a table that is gone. Not swapped: the job
//    rolls forward (catch-up, checksum, a new cut-over; a sentry the dead run left is dropped).

import type { ArtefactNames, Checkpoint, DialectSession, StreamPositionProblem, TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { ChecksumSummary } from './verifier.js';
import type { AlterResult } from './job-options.js';

export const SWAPPED_BEFORE_THE_STOP =
  'the interrupted cut-over had swapped the tables: the new table is live and the old one is the backup; finishing the job. ' +
  'The swap proof could not run (its run was stopped): check the backup for writes after the swap if in doubt';

/** The result of a resume that found the swap done: nothing copied, applied or cut over by this run. */
export function resultAfterSwap(r: { table: string; backupTable: string | null; rowsCopied: number; startedAt: number; checksum: ChecksumSummary }): AlterResult {
  return {
    table: r.table,
    backupTable: r.backupTable,
    rowsCopied: r.rowsCopied,
    eventsApplied: 0,
    cutoverAttempts: 0,
    cutoverLockedMs: 0,
    seconds: Math.round((Date.now() - r.startedAt) / 100) / 10,
    repairedChunks: 0,
    checksum: r.checksum,
  };
}

/** True when the checkpoint's cut-over had swapped: no table under the shadow's name, the backup's name holds a table. */
export async function swapHappened(session: DialectSession, ref: TableRef, cp: Checkpoint): Promise<boolean> {
  if (cp.phase !== 'cutting-over') return false;
  const shadow = await session.inspectTable({ schema: ref.schema, name: cp.names.shadow });
  if (shadow) return false;
  return (await session.inspectTable({ schema: ref.schema, name: cp.names.backup })) !== null;
}

export async function endStoppedRun(session: DialectSession, ref: TableRef, cp: Checkpoint, log: Logger): Promise<void> {
  const ended = await session.endStoppedRun(cp.names, ref);
  if (ended.length > 0) log.warn({ sessions: ended }, "ended the stopped run's statements still running on the server before resuming");
}

/** A resume refused because its change stream cannot continue: what is left, and the way out. */
export function cannotResume({ problem, left }: StreamPositionProblem, names: ArtefactNames): string {
  const removed = left.length === 0 ? 'the checkpoint' : `${left.join(', ')} and the checkpoint`;
  return (
    `cannot resume: ${problem}. The change stream cannot continue where the stopped run left it, and the shadow ${names.shadow} would miss what changed since. ` +
    `Nothing was changed. Run \`shadowshift cleanup --execute\` (it removes what the stopped run left: ${removed}), ` +
    'then start the job again without --resume'
  );
}
