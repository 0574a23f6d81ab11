// What a finished ALTER keeps so it can be undone without losing a write (`alter
// --revertible`, `shadowshift revert`): the old table, and where in the change stream
// the writes to the new table begin. Part of the seam between the engine and a
// database: see ../dialect.ts; the engine's side is engine/revert-point.ts.

import type { StreamPosition } from './stream.js';
import type { CopyPlan } from './copy.js';
import type { ArtefactNames, TableRef } from './table.js';

/** Recorded right after a revertible job's swap; removed when the window closes. */
export interface RevertPoint {
  version: 1;
  /** The job that swapped (its old table is `<table>_ssold_<jobId>` on MySQL). */
  jobId: string;
  table: TableRef;
  /** The table as it was before the swap, now kept under this name (same schema). */
  oldTable: string;
  /** The ALTER that was applied (for the plan and messages). */
  alter: string;
  /** Columns the ALTER renamed, old name first: the way back renames them again. */
  renamedColumns: Array<[string, string]>;
  /** Every write to the table since the swap lies after this position in the change stream. */
  streamPosition: StreamPosition;
  /** ISO time of the swap, by the job's clock. */
  swappedAt: string;
  /** How long after the swap a revert is allowed (--revert-window). */
  windowSeconds: number;
}

/** Seconds since the point's swap. */
export function revertPointAge(point: RevertPoint, now = Date.now()): number {
  return Math.max(0, Math.round((now - Date.parse(point.swappedAt)) / 1000));
}

export interface RevertPointStore {
  save(point: RevertPoint): Promise<void>;
  load(table: TableRef): Promise<RevertPoint | null>;
  remove(table: TableRef): Promise<void>;
}

/** Rows of the live table the way back would lose, named by key (DialectSession.revertLosses). */
export interface RevertLoss {
  /** What would be lost, e.g. `email: 3 values longer than varchar(20)`. */
  problem: string;
  /** Up to a few keys of such rows, as `id=7`. */
  keys: string[];
}

/** What a dialect that can revert provides besides the engine's usual seams. */
export interface RevertSupport {
  points: RevertPointStore;
  /** How long the server keeps its change log before purging it by itself, in seconds; null: it does not purge it. */
  logRetentionSeconds(): Promise<number | null>;
  /** Creates what the revert's change stream needs beside the old table (MySQL: the changelog). */
  prepareStream(names: ArtefactNames): Promise<void>;
  /**
   * Scans the live table for values the way back would lose: a value that does not fit
   * the old column's type, NULL where the old column is NOT NULL, duplicates under a
   * unique key of the old table the new one does not enforce, a column of the old table
   * the stream gives no value for and that has no default. [] when none.
   */
  losses(plan: CopyPlan): Promise<RevertLoss[]>;
}
