// What `shadowshift revert` checks before anything changes (AlterJob.prepare in revert
// mode): the table's revert point and its window, that the change stream still reaches
// back to the swap, that the old table is there, the usual table checks, and the live
// table scanned for what the old one cannot hold (RevertSupport.losses).

import { revertWindowClosed, type AlterAnalysis, type ArtefactNames, type Checkpoint, type CopyPlan, type DialectSession, type PreflightCheck, type RevertPoint, type RevertSupport, type TableInfo } from '../dialects/dialect.js';
import { UsageError } from '../util/errors.js';
import { buildCopyPlan, keepingOtherColumns } from './copy-plan.js';
import { planOptions } from './plan-report.js';
import { runChecks, type CheckOutcome } from './preflight.js';
import { ageSeconds, describeLosses, formatSeconds, noRevertPoint, revertCheckpoint, revertNames, reverseAnalysis, windowClosed } from './revert-point.js';

export interface RevertPlan {
  point: RevertPoint;
  names: ArtefactNames;
  analysis: AlterAnalysis;
  /** Null when the old table is gone, or the plan failed (a check says why). */
  plan: CopyPlan | null;
  /** The revert as a job resumed at its catch-up (revertCheckpoint). */
  checkpoint: Checkpoint;
  /** A killed run of this revert had swapped: the old table is the table again; only the finish is left. */
  swappedBefore: boolean;
}

/** Run with the job lock held, and a stopped run's statements ended (the job does both first). */
export async function prepareRevert(a: { session: DialectSession; checks: PreflightCheck[]; info: TableInfo; point: RevertPoint; outcomes: CheckOutcome[] }): Promise<RevertPlan> {
  const { session, info, point, outcomes } = a;
  const support = session.revert!;
  const ref = info.ref;
  const names = revertNames(session, point);
  const analysis = reverseAnalysis(point);
  const checkpoint = revertCheckpoint(point, names);
  const old = await session.inspectTable({ schema: ref.schema, name: point.oldTable });
  if (!old) {
    // The revert's own backup exists only once its swap ran: the table is the old one again.
    if (await session.inspectTable({ schema: ref.schema, name: names.backup })) return { point, names, analysis, plan: null, checkpoint, swappedBefore: true };
    throw new UsageError(
      `the old table ${ref.schema}.${point.oldTable} that ${ref.schema}.${ref.name} would go back to is gone (dropped?); the revert cannot be done. ` +
        'Nothing was changed. `shadowshift cleanup --execute --close-reverts` removes the revert point',
    );
  }
  outcomes.push(...(await runChecks(a.checks, 'table', { table: ref, info, alter: analysis, plan: null, resuming: names, revertible: true })));
  outcomes.push(await capacityOutcome(support, false));
  const held = await support.heldLogBytes(point);
  const closed = windowClosed(point) ?? (revertWindowClosed(point, held) && `the revert window of ${ref.schema}.${ref.name} closed: ${revertWindowClosed(point, held)}`);
  outcomes.push(
    closed
      ? { check: 'revert-window', phase: 'table', ok: false, message: `${closed}. Run \`shadowshift cleanup --execute\` to remove the revert point; to change the schema back, run an ALTER` }
      : { check: 'revert-window', phase: 'table', ok: true, message: `swapped ${formatSeconds(ageSeconds(point))} ago, within the ${formatSeconds(point.windowSeconds)} window` },
  );
  const lost = await session.streamPositionProblem?.(point.streamPosition, names);
  if (lost) {
    outcomes.push({
      check: 'stream-position',
      phase: 'table',
      ok: false,
      message: `cannot revert: ${lost.problem}; the writes made to the table since the swap cannot be read back. Nothing was changed`,
    });
  }
  const built = buildCopyPlan(info, old, analysis, planOptions(session));
  if (!built.plan) {
    outcomes.push({ check: 'revert-plan', phase: 'alter', ok: false, message: `cannot revert: ${built.reason}` });
    return { point, names, analysis, plan: null, checkpoint, swappedBefore: false };
  }
  const plan = keepingOtherColumns(built.plan, planOptions(session));
  const losses = await support.losses(plan);
  if (plan.keepsOtherColumns && plan.keyWithin) {
    losses.push({
      problem: `the old table's key ${plan.keyWithin} is wider than the live table's: a row cannot be changed in place by its key, so the values of the old table's columns that the live table lacks would be lost. Not supported`,
      keys: [],
    });
  }
  outcomes.push(
    losses.length > 0
      ? { check: 'revert-losses', phase: 'alter', ok: false, message: describeLosses(losses) }
      : { check: 'revert-losses', phase: 'alter', ok: true, message: 'every row of the table fits the old definition' },
  );
  return { point, names, analysis, plan, checkpoint, swappedBefore: false };
}

/** --revertible, and every revert (which keeps a way back forward again): whether the server can hold the way back. */
export async function capacityOutcome(support: RevertSupport, alsoStreaming: boolean): Promise<CheckOutcome> {
  const problem = (await support.wayBackCapacityProblem?.(alsoStreaming)) ?? null;
  return problem
    ? { check: 'revert-capacity', phase: 'table', ok: false, message: problem }
    : { check: 'revert-capacity', phase: 'table', ok: true, message: 'the server can hold the way back' };
}

/** --revertible: whether the server keeps its change log for the whole window (a warning when not). */
export async function retentionOutcome(support: RevertSupport, windowSeconds: number): Promise<CheckOutcome> {
  const kept = await support.logRetentionSeconds();
  if (kept === null || kept >= windowSeconds) {
    return { check: 'revert-log-retention', phase: 'table', ok: true, message: kept === null ? 'the server does not purge its change log by itself' : `the change log is kept ${formatSeconds(kept)}` };
  }
  return {
    check: 'revert-log-retention', phase: 'table', ok: true, warning: true,
    message: `the server purges its change log after ${formatSeconds(kept)}, before the ${formatSeconds(windowSeconds)} revert window ends: a revert after that is refused. ` +
      'Keep the log longer (MySQL/MariaDB: binlog_expire_logs_seconds) or give a shorter --revert-window',
  };
}

/** The table's revert point, or why there is none. */
export async function loadRevertPoint(session: DialectSession, info: TableInfo): Promise<RevertPoint> {
  if (!session.revert) {
    throw new UsageError(`revert is not built for ${session.name} yet (only MySQL/MariaDB so far); nothing was changed. The old table is kept: compare and copy from it by hand if you must go back`);
  }
  const point = await session.revert.points.load(info.ref);
  if (!point) throw noRevertPoint(info.ref);
  return point;
}
