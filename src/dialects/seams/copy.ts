// The copy's seam: the plan (columns, key), key ranges, and the RowCopier that moves them.
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { TableInfo, Value } from './table.js';

/** An inclusive-exclusive range over the chunk key: (after, upTo]. Tuples for composite keys. */
export interface KeyRange {
  /** Copy rows whose key is strictly greater than this; null = from the start. */
  after: Value[] | null;
  /**
   * Copy rows whose key is less than or equal to this; null = to the end. The copy
   * always has a ceiling (rows above it come through the stream); only the checksum's
   * last range is open, so the shadow's rows above the original's largest key are
   * compared too.
   */
  upTo: Value[] | null;
}

/** A column of the original and the shadow column its data goes to. */
export interface ColumnMap {
  source: string;
  target: string;
}

export interface CopyPlan {
  original: TableInfo;
  shadow: TableInfo;
  /** Key the copy walks and the applier matches rows on; unique and NOT NULL in both tables, in index order. */
  key: ColumnMap[];
  /**
   * Set when the shadow has no unique index over `key` alone, only this wider one (the
   * ALTER widened the primary key): a row of the shadow is still identified by `key`,
   * but an upsert must remove the key's row before it inserts (MySQL only, see
   * DialectSession.matchesByContainedKey).
   */
  keyWithin?: string;
  /** Columns whose data is carried across; generated columns and dropped columns excluded. */
  columns: ColumnMap[];
  /**
   * Unique indexes of the shadow that the original does not enforce. A duplicate on
   * one of them is real data loss (never transient), so copier and applier must fail.
   */
  newUniqueIndexes: string[];
  /**
   * Those of newUniqueIndexes that the original has over the same columns but that
   * the ALTER makes compare less finely (a collation, a scale, a prefix): say so when
   * one of them has a duplicate. Absent = none.
   */
  weakenedUniqueIndexes?: WeakenedUniqueIndex[];
  /**
   * The shadow has columns that `columns` does not fill, and their values must stay (a
   * revert: the old table's values of a column the ALTER dropped). Writers then change a
   * row of the shadow in place (upsert, update) instead of deleting it and inserting it
   * whole, which would give those columns their defaults. Absent = false.
   */
  keepsOtherColumns?: boolean;
}

export interface WeakenedUniqueIndex {
  /** The shadow's index (what the server names in a duplicate-key error). */
  name: string;
  /** The original's index over the same columns. */
  originalName: string;
  /** What changed, e.g. `how code compares (collation utf8mb4_bin → utf8mb4_general_ci)`. */
  change: string;
}

export interface ChunkResult {
  rowsCopied: number;
}

/** Lets a test hold a chunk's transaction open, to prove invariant 3 deterministically. */
export type BeforeChunkCommit = (range: KeyRange) => Promise<void>;

export interface RowCopier {
  /** Lock the rows each chunk reads even where the dialect can copy without (--copy-row-locks); set before the first chunk. */
  rowLocks?: boolean;
  /**
   * Smallest and largest key now in the original, or null when it is empty. Called after
   * the stream started: the largest must count a write that is before the stream's start
   * but not visible yet (MySQL: ARCHITECTURE, "The copy's ceiling").
   */
  keyBounds(plan: CopyPlan): Promise<{ min: Value[]; max: Value[] } | null>;
  /** The key of the `size`-th row after `after` (not beyond `ceiling`), or `ceiling` when fewer rows remain. */
  chunkEnd(plan: CopyPlan, after: Value[] | null, size: number, ceiling: Value[]): Promise<Value[]>;
  /**
   * Copy the rows in `range` into the shadow without overwriting a row the stream
   * already wrote. Must fail (throw DataLossError) rather than drop or alter a
   * row: truncation, NOT NULL over NULL, duplicates on a new unique key.
   */
  copyChunk(plan: CopyPlan, range: KeyRange, beforeCommit?: BeforeChunkCommit): Promise<ChunkResult>;
}
