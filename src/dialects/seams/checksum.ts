// The checksum's seam: one consistent view over both tables.
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { CopyPlan, KeyRange } from './copy.js';
import type { Value } from './table.js';

/** One consistent snapshot over the original and the shadow. */
export interface ChecksumView {
  /**
   * Compares the rows of `range` in both tables over the copied columns. A range open
   * at both ends must read each table in one full scan: the verifier compares the whole
   * tables that way first.
   */
  compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }>;
  close(): Promise<void>;
}

export interface Checksummer {
  /**
   * Blocks writes to the original only while `drainUnderLock` brings the shadow
   * up to date (bounded by lockTimeoutMs), then opens one snapshot that sees
   * both tables at that same moment, and releases the lock.
   */
  open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView>;
  /** Replaces the shadow's rows in `range` with a fresh, share-locked copy of the original's. */
  recopy(plan: CopyPlan, range: KeyRange): Promise<void>;
  /**
   * Replaces the shadow's rows of these keys (the plan's key, in its order) with fresh,
   * share-locked copies of the original's, or none where the original has none. Throws a
   * DataLossError, naming the row, when a value does not fit the shadow.
   */
  recopyKeys(plan: CopyPlan, keys: Value[][]): Promise<void>;
}
