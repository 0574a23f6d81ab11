// The change stream's seam: events, batches, positions, checkpoints, and the Applier.
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { CopyPlan } from './copy.js';
import type { ArtefactNames, Row, TableRef, Value } from './table.js';

/**
 * `xid`: PostgreSQL's id of the transaction that made the change. The stream delivers
 * a transaction once its commit record is written, which can be before other sessions
 * see it; a dialect that reads the source for an event waits for it by this id.
 */
export type RowChange =
  | { kind: 'insert'; after: Row; xid?: number }
  | { kind: 'update'; before: Row | null; after: Row; xid?: number }
  | { kind: 'delete'; before: Row; xid?: number }
  | { kind: 'truncate' };

export type ChangeEvent =
  | RowChange
  /**
   * MySQL/MariaDB: what a parent's change did to the table's rows through one of its
   * cascading foreign keys (`key`), which the binlog does not show: the rows whose
   * `columns` equal `from` are deleted, set to NULL, or moved to `to` (mysql-cascades.ts).
   */
  | { kind: 'cascade'; action: 'delete' | 'set-null' | 'move'; key: string; columns: string[]; from: Value[]; to?: Value[] };

/** A position in the change stream the dialect can resume from (binlog file:pos, LSN). */
export type StreamPosition = string;

export interface ChangeBatch {
  events: ChangeEvent[];
  /** Applying every event up to and including this batch makes `position` safe to resume from. */
  position: StreamPosition;
  /** Marker ids (written by `ChangeStream.writeMarker`) that this batch passed. A `seesSwap` stream ends a batch at each. */
  markers: string[];
  /**
   * The batch ends at the job's own swap (streams with `seesSwap`): its events were
   * logged before the swap, and nothing after the swap is delivered.
   */
  swap?: boolean;
  /** With `swap`: where the writes to the new table begin (the position right after the swap), when the stream knows it. */
  afterSwap?: StreamPosition | null;
}

export interface ChangeStream {
  /**
   * Begins reading at the current end of the log, or at `from` (a position this
   * stream returned earlier, for a resume). Resolves once the start position is
   * fixed on the server, and returns it.
   */
  start(from?: StreamPosition): Promise<StreamPosition>;
  /** Takes up to `maxEvents` events that have arrived, without waiting. */
  take(maxEvents: number): ChangeBatch | null;
  /** Number of decoded events waiting to be taken. */
  backlog(): number;
  /** Resolves when there is something to take, or after `ms`. */
  waitForData(ms: number): Promise<void>;
  /** Tells the server the changes up to `position` are applied (PostgreSQL acks; MySQL no-op). */
  acknowledge(position: StreamPosition): Promise<void>;
  /** Writes a marker into the log, after every change committed before this call. */
  writeMarker(id: string): Promise<void>;
  /** Seconds between a change committing and it being taken here, when known. */
  lagSeconds(): number | null;
  /** Rejects when the stream has failed; the engine races it against its work. */
  readonly failed: Promise<never>;
  /**
   * The log shows the cut-over's swap, and take() ends a batch there (`ChangeBatch.swap`),
   * so the engine can check that no write reached the old table between the drain marker
   * and the swap. Absent where the swap is not a separate step in the log (PostgreSQL
   * swaps in the transaction that holds the lock).
   */
  readonly seesSwap?: boolean;
  /** Stops reading. With keepForResume the server-side state (PostgreSQL slot, publication) stays for `--resume`. */
  stop(options?: { keepForResume?: boolean }): Promise<void>;
  /**
   * A stream opened with exportCopySnapshot (PostgreSQL): 'held' while the copy reads the
   * original as of the stream's start, without row locks. take() gives nothing then: a
   * change applied before the chunk that copies its row would be undone by it.
   * 'lost' when the snapshot ended by itself (chunks then read current data under row
   * locks); null once endCopySnapshot() ran, or for other streams.
   */
  copySnapshotState?(): 'held' | 'lost' | null;
  /** Releases the copy's snapshot; take() hands out the changes since the stream's start. */
  endCopySnapshot?(): Promise<void>;
}

/** What a resumable job records every few seconds (invariant 8 in docs/ARCHITECTURE.md). */
export interface Checkpoint {
  version: 1;
  jobId: string;
  table: TableRef;
  alter: string;
  names: ArtefactNames;
  /** Every event up to here is applied to the shadow. */
  streamPosition: StreamPosition;
  /** Every chunk up to this key is copied (encoded by engine/checkpoint-codec); null before the first. */
  watermark: string | null;
  /** The largest key when the copy began (encoded); null for an empty table. */
  ceiling: string | null;
  rowsCopied: number;
  /** ISO time the checkpoint was written, by the job's clock. */
  savedAt: string;
  /** The phase the job was in (absent in checkpoints of earlier versions: copying). */
  phase?: CheckpointPhase;
}

/** Where a job was when it saved a checkpoint; a resume continues from any of them. */
export type CheckpointPhase = 'copying' | 'indexes' | 'catching-up' | 'postponed' | 'cutting-over';

export interface CheckpointStore {
  save(checkpoint: Checkpoint): Promise<void>;
  load(table: TableRef): Promise<Checkpoint | null>;
  remove(table: TableRef): Promise<void>;
}

/** Why a resume's change stream cannot continue from its checkpoint (DialectSession.streamPositionProblem). */
export interface StreamPositionProblem {
  /** What is wrong and what would let a later job resume, as a clause of `cannot resume: …`. */
  problem: string;
  /**
   * What the stopped run left that `cleanup --execute` removes, the checkpoint aside: the
   * refusal names it, and which of a dialect's artefacts are still there depends on the problem.
   */
  left: string[];
}

export interface Applier {
  /** Applies events to the shadow in one transaction. Events from the stream win over copied rows. */
  apply(plan: CopyPlan, events: ChangeEvent[]): Promise<void>;
}
