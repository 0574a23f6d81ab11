// What a job does about revert points around its swap (the steps AlterJob runs when the
// table has a revert point, or the job is revertible or a revert). Plain functions over
// the dialect's RevertSupport; the job decides when each runs.

import type { ArtefactNames, DialectSession, RevertPoint, RevertSupport, TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { CheckOutcome } from './preflight.js';
import { ageSeconds, formatSeconds, recordRevertPoint, wayBackNames } from './revert-point.js';

/** prepare(): the table's revert point is a previous ALTER's (not this job's own, which a resume finds): this job closes it. */
export function closesWindowOutcome(previous: RevertPoint): CheckOutcome {
  return {
    check: 'revert-window', phase: 'table', ok: true, warning: true,
    message: `this job closes the revert window of the previous ALTER (${previous.alter}, swapped ${formatSeconds(ageSeconds(previous))} ago): after it, \`shadowshift revert\` can no longer undo that one. Its old table ${previous.oldTable} stays as a plain backup`,
  };
}

/** execute(), under the job lock: the previous ALTER's point and its way back go. */
export async function closePreviousWindow(support: RevertSupport, session: DialectSession, table: TableRef, log: Logger): Promise<void> {
  const previous = await support.points.load(table);
  if (previous) await support.dropWayBack(wayBackNames(session, table, previous.jobId));
  await support.points.remove(table);
  log.warn({ table: `${table.schema}.${table.name}` }, "closed the previous ALTER's revert window: `shadowshift revert` can no longer undo it");
}

/**
 * After the swap: the job's revert point. Without one (the swap's end unknown, the save
 * failed) the way back it prepared goes, and so does the point a revert used: it leads
 * to the table that is live again.
 */
export async function afterSwap(a: Parameters<typeof recordRevertPoint>[0] & { wayBack: ArtefactNames | null; isRevert: boolean }): Promise<void> {
  if (await recordRevertPoint(a)) return;
  const left = (err: Error) => a.log.warn({ err: err.message }, 'could not remove a way back no revert point leads to: `shadowshift cleanup` lists it');
  if (a.wayBack) await a.support.dropWayBack(a.wayBack).catch(left);
  if (a.isRevert) await a.support.points.remove(a.table).catch(left);
}

/**
 * A resume that finds the swap done. If the stopped run recorded its point, it is kept
 * with its way back; otherwise where the writes since the swap begin died with the
 * stopped run: no point (a revert's own used one removed), and the way back goes.
 */
export async function afterStoppedSwap(a: { support: RevertSupport; session: DialectSession; table: TableRef; pointJobId: string; isRevert: boolean; log: Logger }): Promise<void> {
  const name = `${a.table.schema}.${a.table.name}`;
  if ((await a.support.points.load(a.table))?.jobId === a.pointJobId) {
    a.log.info({ table: name }, 'the stopped run recorded its revert point after its swap: kept, with its way back');
    return;
  }
  await a.support.dropWayBack(wayBackNames(a.session, a.table, a.pointJobId));
  if (a.isRevert) await a.support.points.remove(a.table);
  a.log.warn({ table: name }, 'no revert point was recorded for the interrupted swap: to undo it, run an ALTER');
}
