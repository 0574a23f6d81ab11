// Revert after the cut-over (docs/ARCHITECTURE.md, "Revert after the cut-over").
//
// A revertible job records, right after its swap, where in the change stream the writes
// to the new table begin, and keeps the old table. `shadowshift revert` is then a job
// like any other with the roles turned round: its original is the live table, its shadow
// the old table, which already holds every row as of the swap. So it copies nothing: it
// reads the stream from the swap on, converts each write back to the old columns,
// catches up, checksums and cuts over with the usual machinery. Replaying from the swap
// onto an old table a killed revert already brought part of the way is safe: every event
// carries whole rows and the applier writes them by key, so a replay ends where one pass does.

import { revertJobId, revertPointAge, type AlterAnalysis, type ArtefactNames, type Checkpoint, type DialectSession, type RevertLoss, type RevertPoint, type RevertSupport, type StreamPosition, type TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';

export const DEFAULT_REVERT_WINDOW_SECONDS = 24 * 3600;

/** What a swap of a revertible job records. */
export function revertPointAt(r: { jobId: string; table: TableRef; oldTable: string; alter: string; renamedColumns: Iterable<[string, string]>; after: StreamPosition; windowSeconds: number; maxLogBytes?: number }): RevertPoint {
  return {
    ...(r.maxLogBytes === undefined ? {} : { maxLogBytes: r.maxLogBytes }),
    version: 1,
    jobId: r.jobId,
    table: r.table,
    oldTable: r.oldTable,
    alter: r.alter,
    renamedColumns: [...r.renamedColumns],
    streamPosition: r.after,
    swappedAt: new Date().toISOString(),
    windowSeconds: r.windowSeconds,
  };
}

/**
 * After the swap of a --revertible job, or of a revert (whose way back is the way forward
 * again, `undone` being the point it used): where the writes to the new table begin, and
 * the old table that stays. False when the stream did not say where the swap ended.
 */
export async function recordRevertPoint(a: {
  support: RevertSupport;
  log: Logger;
  table: TableRef;
  /** The swapping job's id, the same in every run of it (a revert's is revertJobId of the point it used). */
  jobId: string;
  oldTable: string;
  afterSwap: StreamPosition | null;
  undone: RevertPoint | null;
  alter: string;
  renamedColumns: Iterable<[string, string]>;
  windowSeconds?: number;
  /** Where the way back holds the server's log (PostgreSQL's slot): how much it may hold. */
  maxLogBytes?: number;
}): Promise<boolean> {
  const table = `${a.table.schema}.${a.table.name}`;
  if (!a.afterSwap) {
    a.log.warn({ table }, 'the change stream did not say where the swap ended: no revert point was recorded, so `shadowshift revert` cannot undo this job');
    return false;
  }
  const undone = a.undone;
  const point = revertPointAt({
    jobId: a.jobId,
    table: a.table,
    oldTable: a.oldTable,
    alter: undone ? describeRevert(undone) : a.alter,
    renamedColumns: undone ? undone.renamedColumns.map(([from, to]) => [to, from] as [string, string]) : a.renamedColumns,
    after: a.afterSwap,
    windowSeconds: a.windowSeconds ?? undone?.windowSeconds ?? DEFAULT_REVERT_WINDOW_SECONDS,
    maxLogBytes: a.maxLogBytes,
  });
  try {
    await a.support.points.save(point);
  } catch (err) {
    // The swap is done and stands: the job succeeded, only its way back is missing.
    a.log.warn({ table, err: (err as Error).message }, 'the swap is done, but its revert point could not be saved: `shadowshift revert` cannot undo this job');
    return false;
  }
  const until = new Date(Date.parse(point.swappedAt) + point.windowSeconds * 1000).toISOString();
  a.log.info({ table, oldTable: point.oldTable, position: a.afterSwap, windowSeconds: point.windowSeconds }, `revert point recorded: \`shadowshift revert --table ${table}\` can undo this until ${until}`);
  return true;
}


/** The way back, as an ALTER analysis: the columns the ALTER renamed go back to their names. */
export function reverseAnalysis(point: RevertPoint): AlterAnalysis {
  return {
    renamedColumns: new Map(point.renamedColumns.map(([from, to]) => [to, from])),
    droppedColumns: new Set(),
    addedColumns: new Set(),
    renamesTable: false,
  };
}

/** A revert's artefacts: its shadow is the old table; its backup will hold the table it replaces. */
export function revertNames(session: DialectSession, point: RevertPoint): ArtefactNames {
  const names = session.artefactNames(point.table, revertJobId(point.jobId));
  // `revert`: the shadow is an old table, with objects of its own (PostgreSQL's swap minds them).
  return { ...names, shadow: point.oldTable, extra: { ...names.extra, revert: 'true' } };
}

/** The artefact names of the job that would revert the point a job (`pointJobId`) records at its swap. */
export function wayBackNames(session: DialectSession, table: TableRef, pointJobId: string): ArtefactNames {
  return session.artefactNames(table, revertJobId(pointJobId));
}

/**
 * The revert as a job resumed at its catch-up: every event from the swap on is still to
 * be applied, and there is nothing to copy.
 */
export function revertCheckpoint(point: RevertPoint, names: ArtefactNames): Checkpoint {
  return {
    version: 1,
    jobId: revertJobId(point.jobId),
    table: point.table,
    alter: describeRevert(point),
    names,
    streamPosition: point.streamPosition,
    watermark: null,
    ceiling: null,
    rowsCopied: 0,
    savedAt: point.swappedAt,
    phase: 'catching-up',
  };
}

const REVERT_OF = 'revert of: ';

export function describeRevert(point: Pick<RevertPoint, 'alter'>): string {
  return `${REVERT_OF}${point.alter}`;
}

/** Whether a revert point's `alter` is a revert's: the table was reverted (revert again goes forward). */
export const isRevertOf = (alter: string): boolean => alter.startsWith(REVERT_OF);

/** Seconds since the point's swap. */
export const ageSeconds = revertPointAge;
export { revertJobId };

/** Why the point can no longer be used, or null. */
export function windowClosed(point: RevertPoint, now = Date.now()): string | null {
  const age = ageSeconds(point, now);
  if (age <= point.windowSeconds) return null;
  return `the revert window of ${point.table.schema}.${point.table.name} closed ${formatSeconds(age - point.windowSeconds)} ago (the ALTER swapped ${formatSeconds(age)} ago; --revert-window was ${formatSeconds(point.windowSeconds)})`;
}

export function formatSeconds(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 360) / 10} h`;
}

export function noRevertPoint(table: TableRef): UsageError {
  return new UsageError(
    `${table.schema}.${table.name} has no revert point: the ALTER was not run with --revertible, its revert window was closed ` +
      '(a later alter of the table, or `shadowshift cleanup --execute --close-reverts`), or the table was reverted already and its way forward was not recorded. Nothing was changed',
  );
}

/** One line for the plan's failed check. */
export function describeLosses(losses: RevertLoss[]): string {
  return (
    'the way back would lose data, so the revert is refused (nothing was changed): ' +
    losses.map((l) => (l.keys.length ? `${l.problem} (${l.keys.join('; ')})` : l.problem)).join('; ') +
    '. Fix those rows in the live table (or accept the new schema), then run revert again'
  );
}
