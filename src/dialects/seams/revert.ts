// What a finished ALTER keeps so it can be undone without losing a write (`alter
// --revertible`, `shadowshift revert`): the old table, and where in the change stream
// the writes to the new table begin. Part of the seam between the engine and a
// database: see ../dialect.ts; the engine's side is engine/revert-point.ts.

import { createHash } from 'node:crypto';
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
  /**
   * Where the stream the revert reads holds the server's log (PostgreSQL's kept slot): the
   * most it may hold (--max-slot-lag) before the window counts as closed.
   */
  maxLogBytes?: number;
}

/**
 * The id of the job that reverts the point of job `pointJobId`, the same for every run of
 * it, and known before that point's swap: a killed run's changelog and cut-over sentry
 * carry the names the next run uses, and the stream a PostgreSQL revert reads is created
 * under its names before the swap (RevertSupport.prepareWayBack).
 */
export function revertJobId(pointJobId: string): string {
  return createHash('sha256').update(`revert ${pointJobId}`).digest('hex').slice(0, 8);
}

/** Why the point's window is closed (its time is up, or its kept slot holds too much WAL), or null while it is open. */
export function revertWindowClosed(point: RevertPoint, heldLogBytes: number | null, now = Date.now()): string | null {
  const age = revertPointAge(point, now);
  if (age > point.windowSeconds) return `its --revert-window of ${point.windowSeconds} s ended ${age - point.windowSeconds} s ago`;
  if (heldLogBytes !== null && point.maxLogBytes !== undefined && heldLogBytes > point.maxLogBytes) {
    return `the replication slot kept for it holds ${heldLogBytes} bytes of WAL, more than --max-slot-lag (${point.maxLogBytes} bytes)`;
  }
  return null;
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
  /** How much of the server's log the stream a revert of `point` reads holds back now (PostgreSQL: its slot), or null where it holds none. */
  heldLogBytes(point: RevertPoint): Promise<number | null>;
  /** How long the server keeps its change log before purging it by itself, in seconds; null: it does not purge it. */
  logRetentionSeconds(): Promise<number | null>;
  /**
   * Before a revertible job's swap: what will let a revert read every write to the new
   * table from the swap on. `shadow` is the table the swap brings in; `wayBack` the
   * artefact names of the job that would revert it. MySQL: nothing (the binlog is
   * there); PostgreSQL: a publication of the shadow and a slot, kept after the job.
   */
  prepareWayBack(shadow: TableRef, wayBack: ArtefactNames, original: TableRef): Promise<void>;
  /**
   * Why the server cannot hold the way back beside what the job itself needs, or null.
   * PostgreSQL: a slot for the way back, and one for the job's own stream when
   * `alsoStreaming` (an ALTER; a revert reads the kept slot). Absent: nothing to hold.
   */
  wayBackCapacityProblem?(alsoStreaming: boolean): Promise<string | null>;
  /** Drops what prepareWayBack made, when the job ends without its swap (or a revert point is closed). */
  dropWayBack(wayBack: ArtefactNames): Promise<void>;
  /**
   * Before a revert's stream starts: what it needs beside the old table (MySQL: the
   * changelog; PostgreSQL: the old table's own triggers disabled, so that applying the
   * changes does not fire them: the swap back creates the live table's).
   */
  prepareStream(names: ArtefactNames): Promise<void>;
  /**
   * Scans the live table for values the way back would lose: a value that does not fit
   * the old column's type, NULL where the old column is NOT NULL, duplicates under a
   * unique key of the old table the new one does not enforce, a column of the old table
   * the stream gives no value for and that has no default. [] when none.
   */
  losses(plan: CopyPlan): Promise<RevertLoss[]>;
}
